"""Writing an evaluation report folder: metrics.json, metrics.md, plots/*.png, videos/*, index.html.

The folder is built under a temporary name beside the target and renamed into place only when
everything was written (:func:`atomic_directory`), so a failed run leaves no report behind.
Plots need matplotlib (the ``eval`` extra); without it the report says so and has no plots.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import html
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from .evaluate import HIGHER_IS_BETTER, EvaluationResult, VideoResult

SCHEMA = "animate-anyone/evaluation/1"
# Column order of the tables; a column appears when any video has the score.
TABLE_COLUMNS = (
    "psnr", "psnr_disco_uint8", "ssim", "ssim_disco", "l1", "l1_disco", "lpips", "lpips_vgg",
    "flicker", "flicker_gt", "pck@0.05", "pck@0.1", "mean_error_norm", "detection_rate", "appearance", "appearance_gt",
)  # fmt: skip
CURVES = ("psnr", "ssim", "l1", "lpips", "lpips_vgg", "flicker", "pck@0.1", "appearance")
CATEGORY_BARS = ("psnr", "ssim", "lpips", "flicker", "pck@0.1", "appearance")


@contextlib.contextmanager
def atomic_directory(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces ``path``, on failure it is removed
    (with any parent folders this call created)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise InputError(f"{path}: folder exists and is not empty (pass --overwrite to replace it)")
    created = [p for p in reversed(path.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    ok = False
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        ok = True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            for p in reversed(created):
                with contextlib.suppress(OSError):
                    p.rmdir()


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "video"


def unique_stem(folder: Path, name: str, suffix: str) -> str:
    """``safe_name(name)``, with ``-2``, ``-3``… appended while ``folder/<stem><suffix>`` exists."""
    stem, k = safe_name(name), 1
    while (folder / f"{stem if k == 1 else f'{stem}-{k}'}{suffix}").exists():
        k += 1
    return stem if k == 1 else f"{stem}-{k}"


def _json_value(x):
    if isinstance(x, dict):
        return {str(k): _json_value(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_value(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_json_value(v) for v in x.tolist()]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return round(x, 8) if math.isfinite(x) else None  # NaN / inf are not JSON: null
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, Path):
        return str(x)
    return x


def result_to_dict(result: EvaluationResult) -> dict:
    return _json_value({
        "schema": SCHEMA,
        "animate_anyone_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "common_size_rule": result.common_size_rule,
        "settings": result.settings,
        "metrics": result.metrics,
        "skipped": result.skipped,
        "summary": result.summary,
        "dataset": result.dataset,
        "categories": result.category_summary(),
        "notes": result.notes,
        "videos": [{
            "name": v.name, "category": v.category, "pred": v.pred, "gt": v.gt,
            "alignment": v.alignment.to_dict(), "scores": v.scores, "notes": v.notes, "per_frame": v.per_frame,
        } for v in result.videos],
    })  # fmt: skip


def _fmt(key: str, x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    if key == "l1_disco":
        return f"{x:.3E}"
    if key.startswith(("fid", "fvd")) and not key.endswith("_samples"):
        return f"{x:.2f}"
    return f"{x:.4f}" if abs(x) < 100 else f"{x:.2f}"


def _header(key: str) -> str:
    arrow = "↑" if key in HIGHER_IS_BETTER else "↓"
    return f"{key} {arrow}" if not key.endswith("_gt") and key not in ("still_fraction",) else key


def _columns(rows: list[dict[str, float]]) -> list[str]:
    present = {k for r in rows for k, v in r.items() if v is not None and math.isfinite(v)}
    return [c for c in TABLE_COLUMNS if c in present]


def markdown_report(result: EvaluationResult) -> str:
    lines = ["# Evaluation", ""]
    cols = _columns([v.scores for v in result.videos])
    cats = any(v.category for v in result.videos)
    head = ["video"] + (["category"] if cats else []) + [_header(c) for c in cols]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in result.videos:
        cells = [v.name] + ([v.category or ""] if cats else []) + [_fmt(c, v.scores.get(c)) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    if len(result.videos) > 1:
        lines.append("| **mean** | " + ("| " if cats else "") + " | ".join(_fmt(c, result.summary.get(c)) for c in cols) + " |")
    if cats:
        lines += ["", "## Per category", "", "| category | " + " | ".join(_header(c) for c in cols) + " |",
                  "|" + "---|" * (len(cols) + 1)]  # fmt: skip
        for cat, s in result.category_summary().items():
            lines.append(f"| {cat} | " + " | ".join(_fmt(c, s.get(c)) for c in cols) + " |")
    if result.dataset:
        lines += ["", "## Over the whole set", "", "| metric | value | samples per side |", "|---|---|---|"]
        for m in ("fid", "fid_vid", "fvd"):
            if m in result.dataset:
                lines.append(f"| {m} ↓ | {_fmt(m, result.dataset[m])} | {int(result.dataset[m + '_samples'])} |")
    if result.skipped:
        lines += ["", "## Not computed", ""] + [f"- **{k}**: {v}" for k, v in result.skipped.items()]
    lines += ["", "## Common size and length", "", f"Rule: {result.common_size_rule}.", ""]
    for v in result.videos:
        a = v.alignment
        lines.append(f"- {v.name}: generated {a.pred_size[0]}x{a.pred_size[1]}, {a.pred_frames} frames; ground truth "
                     f"{a.gt_size[0]}x{a.gt_size[1]}, {a.gt_frames} frames; evaluated at {a.eval_size[0]}x{a.eval_size[1]}, "
                     f"{a.eval_frames} frames" + ("" if not a.notes else " — " + "; ".join(a.notes)))  # fmt: skip
    notes = result.notes + [f"{v.name}: {n}" for v in result.videos for n in v.notes]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", "PSNR of identical frames is counted as 100 dB. `psnr_disco_uint8`, `ssim_disco` and `l1_disco` "
              "reproduce DisCo's released evaluation code (see docs/evaluation.md) for comparison with published tables.", ""]  # fmt: skip
    return "\n".join(lines)


def write_plots(result: EvaluationResult, folder: Path) -> tuple[dict[str, str], str | None]:
    """Per-frame curves per video and per-category bars; ``({key: relative path}, note)``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}, "plots skipped: matplotlib is not installed (pip install 'animate-anyone[eval]')"
    out: dict[str, str] = {}
    (folder / "plots").mkdir(exist_ok=True)
    for v in result.videos:
        keys = [k for k in CURVES if k in v.per_frame and np.isfinite(v.per_frame[k]).any()]
        if not keys:
            continue
        fig, axes = plt.subplots(len(keys), 1, figsize=(7, 1.9 * len(keys)), sharex=True, squeeze=False)
        for ax, k in zip(axes[:, 0], keys):
            ax.plot(np.arange(len(v.per_frame[k])), v.per_frame[k], lw=1.2, label="generated")
            if f"{k}_gt" in v.per_frame:  # the same measure on the ground truth, for reference
                ax.plot(np.arange(len(v.per_frame[f"{k}_gt"])), v.per_frame[f"{k}_gt"], "--", lw=1, label="ground truth")
                ax.legend(fontsize=7)
            ax.set_ylabel(k)
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("frame (flicker: frame pair)")
        fig.suptitle(f"{v.name}: per-frame metrics")
        fig.tight_layout()
        rel = f"plots/{unique_stem(folder / 'plots', v.name, '_per_frame.png')}_per_frame.png"
        fig.savefig(folder / rel, dpi=90)
        plt.close(fig)
        out[v.name] = rel
    cats = result.category_summary()
    keys = [k for k in CATEGORY_BARS if any(math.isfinite(s.get(k, math.nan)) for s in cats.values())]
    if cats and keys:
        fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.2), squeeze=False)
        for ax, k in zip(axes[0], keys):
            names = list(cats)
            ax.bar(names, [cats[c].get(k, math.nan) for c in names], color="#4c78a8")
            ax.set_title(_header(k))
            ax.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        fig.savefig(folder / "plots/categories.png", dpi=90)
        plt.close(fig)
        out["__categories__"] = "plots/categories.png"
    return out, None


def write_side_by_side(folder: Path, result: VideoResult, pred: np.ndarray, gt: np.ndarray) -> dict[str, str]:
    """``videos/<name>.mp4`` (generated | ground truth, evaluation size) and a poster frame."""
    from ..data.video_io import write_image, write_video

    (folder / "videos").mkdir(exist_ok=True)
    base = f"videos/{unique_stem(folder / 'videos', result.name, '.mp4')}"
    both = np.concatenate([pred, gt], axis=2)
    fps = result.alignment.gt_fps or result.alignment.pred_fps or 24.0
    write_video(folder / f"{base}.mp4", both, fps, crf=23)
    write_image(folder / f"{base}.jpg", both[len(both) // 2])
    return {"video": f"{base}.mp4", "poster": f"{base}.jpg"}


_CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}.video{margin:24px 0;padding-top:8px;border-top:1px solid #ddd}
.pair{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}.labels{display:flex;justify-content:space-around;font-weight:600}
video{max-width:100%;background:#000}.note{color:#666;font-size:90%}"""


def html_report(result: EvaluationResult, media: dict[str, dict[str, str]], plots: dict[str, str], plot_note: str | None) -> str:
    e = html.escape
    cols = _columns([v.scores for v in result.videos])
    rows = "".join(
        "<tr><td>" + e(v.name) + "</td>" + "".join(f"<td>{_fmt(c, v.scores.get(c))}</td>" for c in cols) + "</tr>"
        for v in result.videos
    )
    table = "<table><tr><th>video</th>" + "".join(f"<th>{e(_header(c))}</th>" for c in cols) + "</tr>" + rows + "</table>"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>animate-anyone evaluation</title><style>{_CSS}</style></head><body>",
             f"<h1>Evaluation</h1><p class='note'>animate-anyone {e(__version__)} · {len(result.videos)} video(s) · "
             f"metrics: {e(', '.join(result.metrics))}</p>", table]  # fmt: skip
    if result.dataset:
        parts.append("<h2>Over the whole set</h2><table><tr><th>metric</th><th>value</th><th>samples per side</th></tr>")
        for m in ("fid", "fid_vid", "fvd"):
            if m in result.dataset:
                parts.append(f"<tr><td>{m}</td><td>{_fmt(m, result.dataset[m])}</td><td>{int(result.dataset[m + '_samples'])}</td></tr>")
        parts.append("</table>")
    if "__categories__" in plots:
        parts.append(f"<h2>Per category</h2><img src='{e(plots['__categories__'])}' alt='per-category bars'>")
    if result.skipped:
        parts.append("<h2>Not computed</h2><ul>" + "".join(f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in result.skipped.items()) + "</ul>")
    if plot_note:
        parts.append(f"<p class='note'>{e(plot_note)}</p>")
    parts.append(f"<p class='note'>Common size and length: {e(result.common_size_rule)}.</p>")
    for v in result.videos:
        a = v.alignment
        parts.append(f"<div class='video'><h2>{e(v.name)}" + (f" <small>({e(v.category)})</small>" if v.category else "") + "</h2>")
        parts.append(f"<p class='note'>generated {a.pred_size[0]}x{a.pred_size[1]} ({a.pred_frames} frames) · ground truth "
                     f"{a.gt_size[0]}x{a.gt_size[1]} ({a.gt_frames} frames) · evaluated at {a.eval_size[0]}x{a.eval_size[1]}, "
                     f"{a.eval_frames} frames" + "".join(f"<br>{e(n)}" for n in a.notes + v.notes) + "</p><div class='pair'>")  # fmt: skip
        m = media.get(v.name)
        if m:
            parts.append(f"<div><div class='labels'><span>generated</span><span>ground truth</span></div>"
                         f"<video src='{e(m['video'])}' poster='{e(m['poster'])}' controls loop muted playsinline "
                         f"width='{2 * a.eval_size[0]}'></video></div>")  # fmt: skip
        if v.name in plots:
            parts.append(f"<img src='{e(plots[v.name])}' alt='per-frame metrics of {e(v.name)}'>")
        parts.append("</div></div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(result: EvaluationResult, folder: Path, media: dict[str, dict[str, str]] | None = None) -> list[Path]:
    """Write metrics.json, metrics.md, plots and index.html into ``folder`` (already created)."""
    folder = Path(folder)
    plots, plot_note = write_plots(result, folder)
    if plot_note:
        result.notes.append(plot_note)
    (folder / "metrics.json").write_text(json.dumps(result_to_dict(result), indent=1, allow_nan=False))
    (folder / "metrics.md").write_text(markdown_report(result))
    (folder / "index.html").write_text(html_report(result, media or {}, plots, plot_note))
    return [folder / "metrics.json", folder / "metrics.md", folder / "index.html", *(folder / p for p in plots.values())]
