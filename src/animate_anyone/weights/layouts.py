"""Recognise a weights folder, report on it, and build a pipeline from it.

Three layouts are accepted (``--weights DIR``):

* ``moore`` - Moore-AnimateAnyone's ``pretrained_weights/``: ``denoising_unet.pth``,
  ``reference_unet.pth``, ``pose_guider.pth``, ``motion_module.pth``, ``sd-vae-ft-mse/``,
  ``image_encoder/`` and optionally ``stable-diffusion-v1-5/unet/config.json`` (the UNet
  architecture; SD1.5 when absent).
* ``musepose`` - the same four ``.pth`` files in a subfolder (``MusePose/``), with
  ``sd-image-variations-diffusers/unet/config.json``, ``sd-vae-ft-mse/`` and ``image_encoder/``.
* ``native`` - ours: ``model.json`` and one folder per component (``reference_unet/``,
  ``denoising_unet/``, ``pose_guider/``, and ``reference_refiner/`` when ``model.json`` asks for
  one, with ``model.safetensors``; ``vae/`` and ``image_encoder/`` in diffusers/transformers format).

Any layout may also hold ``demo.json``, whose ``settings`` are the model's recommended inference
settings (frame size, steps, guidance, context windows; :func:`recommended_settings`). A model
trained on the lab at 128x128 says so there, and ``animate``, ``reenact`` and ``demo`` use those
values wherever no flag is given. ``weights convert`` carries the file over.

Nothing is ever fetched from a hub: every path is local.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import WeightsError
from ..models.animate_anyone import COMPONENTS, REFINER, AnimateAnyoneModel
from ..models.presets import SD15_IMAGE_ENCODER, SD15_VAE, ModelConfig, downscale_factor, get_preset
from . import moore, native

PTH_FILES = {
    "denoising_unet": "denoising_unet.pth",
    "reference_unet": "reference_unet.pth",
    "pose_guider": "pose_guider.pth",
    "motion_module": "motion_module.pth",
}
REENACT_PTH_FILES = {
    "denoising_unet": "denoising_unet.pth",  # spatial + motion keys in one file
    "reference_unet": "reference_unet.pth",  # with the output head
    "pose_guider": "pose_guider1.pth",  # upper face
    "pose_guider2": "pose_guider2.pth",  # mouth
}
UNET_CONFIG_DIRS = ("stable-diffusion-v1-5", "sd-image-variations-diffusers")
_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
                 "model.safetensors", "pytorch_model.bin")


@dataclass
class LayoutReport:
    """What a weights folder holds. ``paths`` maps each component to its file or folder."""

    root: Path
    kind: str | None = None
    paths: dict[str, Path] = field(default_factory=dict)
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.kind is not None and not self.missing and not self.problems

    def summary(self) -> str:
        lines = [f"weights folder: {self.root}", f"layout: {self.kind or 'not recognised'}"]
        lines += [f"  present: {p}" for p in self.present]
        lines += [f"  MISSING: {p}" for p in self.missing]
        lines += [f"  PROBLEM: {p}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        lines.append("usable: yes" if self.usable else "usable: no")
        return "\n".join(lines)


def _hf_folder_ok(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any((folder / f).is_file() for f in _WEIGHT_FILES)


def _expect(report: LayoutReport, name: str, path: Path, folder: bool = False) -> None:
    ok = _hf_folder_ok(path) if folder else path.is_file()
    report.paths[name] = path
    what = f"{name}: {path}" + (" (config.json + weights)" if folder else "")
    (report.present if ok else report.missing).append(what)


def _native_has_refiner(root: Path) -> bool:
    """Whether a native folder's ``model.json`` asks for a reference detail refiner (an unreadable
    file is reported when the config is read)."""
    try:
        return bool(json.loads((root / native.MODEL_JSON).read_text()).get("reference_refiner_channels"))
    except (OSError, ValueError, AttributeError):
        return False


def _find_pth_dir(root: Path) -> Path | None:
    if (root / PTH_FILES["denoising_unet"]).is_file():
        return root
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if (sub / PTH_FILES["denoising_unet"]).is_file():
            return sub
    return None


def inspect_weights(root: str | Path) -> LayoutReport:
    """Recognise the layout of ``root`` and list what is present and missing (no tensors read)."""
    root = Path(root)
    report = LayoutReport(root=root)
    if not root.is_dir():
        report.problems.append(f"{root} is not a folder")
        return report
    if (root / native.MODEL_JSON).is_file():
        report.kind = "native"
        report.paths["model.json"] = root / native.MODEL_JSON
        for name in COMPONENTS:
            _expect(report, name, root / name / native.WEIGHTS_NAME)
        if _native_has_refiner(root):
            _expect(report, REFINER, root / REFINER / native.WEIGHTS_NAME)
        if (root / "pose_guider2").is_dir():  # a face-reenactment model trained or converted here
            report.kind = "native-reenact"
            _expect(report, "pose_guider2", root / "pose_guider2" / native.WEIGHTS_NAME)
            report.notes.append("face-reenactment weights: use `animate-anyone reenact`")
        _expect(report, "vae", root / "vae", folder=True)
        _expect(report, "image_encoder", root / "image_encoder", folder=True)
        return report
    pth_dir = _find_pth_dir(root)
    if pth_dir is None:
        report.problems.append(
            f"no {PTH_FILES['denoising_unet']} in {root} or its subfolders and no {native.MODEL_JSON}: "
            "expected a Moore-AnimateAnyone pretrained_weights/ folder, a MusePose one, or a native folder"
        )
        return report
    if any((pth_dir / f).is_file() for f in REENACT_PTH_FILES.values() if "guider" in f):
        # the face-reenactment release (`pretrained_weights/reenact/`): VAE and image encoder sit
        # beside it in pretrained_weights/ (or inside the given folder)
        report.kind = "moore-reenact"
        for name, filename in REENACT_PTH_FILES.items():
            _expect(report, name, pth_dir / filename)
        base = next((d for d in (root, root.parent) if (d / "sd-vae-ft-mse").is_dir()), root)
        _expect(report, "vae", base / "sd-vae-ft-mse", folder=True)
        _expect(report, "image_encoder", base / "image_encoder", folder=True)
        report.notes.append("face-reenactment weights: use `animate-anyone reenact`")
        root = base
    else:
        report.kind = "moore" if pth_dir == root else "musepose"
        for name, filename in PTH_FILES.items():
            _expect(report, name, pth_dir / filename)
        _expect(report, "vae", root / "sd-vae-ft-mse", folder=True)
        _expect(report, "image_encoder", root / "image_encoder", folder=True)
    for d in UNET_CONFIG_DIRS:
        cfg = root / d / "unet" / "config.json"
        if cfg.is_file():
            report.paths["unet_config"] = cfg
            report.present.append(f"unet_config: {cfg}")
            break
    else:
        report.notes.append(
            f"no {UNET_CONFIG_DIRS[0]}/unet/config.json: using the Stable Diffusion 1.5 UNet architecture"
        )
    return report


def _json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: unreadable JSON ({exc})") from None


SETTINGS_FILE = "demo.json"
# key -> allowed Python types; "size" is a square frame (the lab), "width"/"height" may replace it
SETTING_TYPES = {
    "size": int, "width": int, "height": int, "frames": int, "gap": int, "steps": int, "guidance": (int, float),
    "context_frames": int, "context_overlap": int, "seed": int, "strength": (int, float),
    "hold_steps": (int, float), "keep_steps": (int, float),
}  # fmt: skip
# the settings that `animate` and `reenact` take from the file (the rest describe the demo's clip)
INFERENCE_SETTINGS = ("size", "width", "height", "steps", "guidance", "context_frames", "context_overlap", "strength",
                      "hold_steps", "keep_steps")


def recommended_settings(root: str | Path) -> dict:
    """The ``settings`` of ``root/demo.json`` (empty when the folder has none).

    A malformed file, an unknown key or a value of the wrong type is a :class:`WeightsError`
    naming the file, so a typo never silently falls back to a default.
    """
    path = Path(root) / SETTINGS_FILE
    if not path.is_file():
        return {}
    data = _json(path)
    settings = data.get("settings", {}) if isinstance(data, dict) else None
    if not isinstance(settings, dict):
        raise WeightsError(f"{path}: 'settings' must be a JSON object")
    for key, value in settings.items():
        if key not in SETTING_TYPES:
            raise WeightsError(f"{path}: unknown setting '{key}' (known: {', '.join(SETTING_TYPES)})")
        if isinstance(value, bool) or not isinstance(value, SETTING_TYPES[key]):
            kind = "an integer" if SETTING_TYPES[key] is int else "a number"
            raise WeightsError(f"{path}: setting '{key}' must be {kind}, not {value!r}")
    return dict(settings)


# demo.json key -> AnimateAnyonePipeline.__call__ argument
CALL_ARGUMENTS = {"steps": "num_inference_steps", "guidance": "guidance_scale", "context_frames": "context_frames",
                  "context_overlap": "context_overlap", "strength": "strength",
                  "hold_steps": "reference_hold_steps", "keep_steps": "reference_keep_steps"}  # fmt: skip


def recommended_call_arguments(root: str | Path) -> dict:
    """:func:`recommended_settings` as pipeline call arguments (``width``, ``height``,
    ``num_inference_steps``, ``guidance_scale``, ``context_frames``, ``context_overlap``,
    ``strength``, ``reference_hold_steps``, ``reference_keep_steps``; only those the file sets, except that a context window without an overlap gets
    a quarter of its length as overlap): ``pipe(ref, poses, **pipe.recommended)``."""
    settings = recommended_settings(root)
    kwargs = {"width": settings["size"], "height": settings["size"]} if "size" in settings else {}
    kwargs.update({k: settings[k] for k in ("width", "height") if k in settings})
    kwargs.update({arg: settings[key] for key, arg in CALL_ARGUMENTS.items() if key in settings})
    if "context_frames" in kwargs and "context_overlap" not in kwargs:  # the default 4 may not fit
        kwargs["context_overlap"] = kwargs["context_frames"] // 4
    return kwargs


def model_config_for(report: LayoutReport) -> ModelConfig:
    """The architecture a Moore/MusePose folder describes (UNet config, PoseGuider shapes)."""
    if report.kind in ("native", "native-reenact"):
        return native.read_model_config(report.root)
    config = get_preset("sd15")
    if "unet_config" in report.paths:
        config = config.replace(unet=_json(report.paths["unet_config"]))
    pg = moore.read_pth(report.paths["pose_guider"])
    channels, cond, emb = moore.pose_guider_channels_from_state_dict(pg)
    if emb != config.pose_guider_embedding_channels:
        raise WeightsError(
            f"{report.paths['pose_guider']}: pose guider outputs {emb} channels but the UNet's conv_in has "
            f"{config.pose_guider_embedding_channels}"
        )
    config = config.replace(pose_guider_block_out_channels=channels, pose_guider_conditioning_channels=cond)
    enc = report.paths.get("image_encoder", report.root / "image_encoder") / "config.json"
    if enc.is_file():
        data = _json(enc)
        data = data.get("vision_config", data)
        config.image_encoder = {k: data[k] for k in SD15_IMAGE_ENCODER if k in data}
    vae = report.paths.get("vae", report.root / "sd-vae-ft-mse") / "config.json"
    if vae.is_file():
        data = _json(vae)
        config.vae = {k: data[k] for k in SD15_VAE if k in data}
    return config


def check_weights(root: str | Path) -> LayoutReport:
    """:func:`inspect_weights`, then read every checkpoint and compare keys and shapes with the
    model the folder describes (on the meta device: nothing is allocated)."""
    report = inspect_weights(root)
    if not report.usable:
        return report
    try:
        config = model_config_for(report)
        with torch.device("meta"):
            model = AnimateAnyoneModel(config)
        if report.kind in ("native", "native-reenact"):
            if report.kind == "native-reenact":
                from ..models.reenact import ReenactModel

                with torch.device("meta"):
                    model = ReenactModel(config)
            for name, module in model.components().items():
                _compare(report, name, module, native.load_state_dict(report.paths[name]))
        elif report.kind == "moore-reenact":
            from ..models.reenact import ReenactModel

            with torch.device("meta"):
                model = ReenactModel(config)
            try:
                moore.load_moore_reenact_model(model, report.paths["denoising_unet"].parent, check_only=True)
            except WeightsError as exc:
                report.problems.append(str(exc))
        else:
            den = moore.convert_moore_denoising_unet(moore.read_pth(report.paths["denoising_unet"]))
            den.update(moore.convert_moore_motion_module(moore.read_pth(report.paths["motion_module"])))
            _compare(report, "denoising_unet + motion_module", model.denoising_unet, den)
            ref = moore.convert_moore_reference_unet(moore.read_pth(report.paths["reference_unet"]))
            _compare(report, "reference_unet", model.reference_unet, ref)
            pg = moore.read_pth(report.paths["pose_guider"])
            _compare(report, "pose_guider", model.pose_guider, pg)
        enc_dim = config.image_encoder.get("projection_dim")
        if enc_dim is not None and enc_dim != config.cross_attention_dim:
            report.problems.append(
                f"image encoder projects to {enc_dim} dims but the UNets expect {config.cross_attention_dim}"
            )
    except WeightsError as exc:
        report.problems.append(str(exc))
    try:
        settings = recommended_settings(report.root)
    except WeightsError as exc:
        report.problems.append(str(exc))
    else:
        shown = ", ".join(f"{k} {v}" for k, v in settings.items() if k in INFERENCE_SETTINGS)
        if shown:
            report.notes.append(f"recommended settings ({SETTINGS_FILE}, used where no flag is given): {shown}")
    return report


def _compare(report: LayoutReport, what: str, module: torch.nn.Module, state: dict) -> None:
    try:
        moore.check_state_dict(module, state, what)
    except WeightsError as exc:
        report.problems.append(str(exc))


def load_pipeline(root: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """Build an :class:`AnimateAnyonePipeline` from a weights folder of any accepted layout."""
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionModelWithProjection

    from ..pipelines.pipeline_animate import AnimateAnyonePipeline

    report = inspect_weights(root)
    if not report.usable:
        first = (report.problems or report.missing)[0]
        raise WeightsError(f"{report.root}: unusable weights folder ({report.kind or 'unknown layout'}): {first}")
    if report.kind in ("moore-reenact", "native-reenact"):
        raise WeightsError(f"{report.root}: face-reenactment weights; use `animate-anyone reenact` with them")
    config = model_config_for(report)
    if report.kind == "native":
        model = native.load_model(report.root)
    else:
        model = AnimateAnyoneModel(config)
        moore.load_moore_model(model, report.paths["denoising_unet"], report.paths["reference_unet"],
                               report.paths["pose_guider"], report.paths["motion_module"])
    try:
        vae = AutoencoderKL.from_pretrained(report.paths["vae"], local_files_only=True)
        encoder = CLIPVisionModelWithProjection.from_pretrained(report.paths["image_encoder"], local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"cannot load VAE / image encoder: {str(exc).splitlines()[0]}") from None
    if encoder.config.projection_dim != config.cross_attention_dim:
        raise WeightsError(
            f"{report.paths['image_encoder']}: projects to {encoder.config.projection_dim} dims but the UNets "
            f"expect {config.cross_attention_dim}"
        )
    pipe = AnimateAnyonePipeline(model, vae, encoder).to(device, dtype)
    pipe.recommended = recommended_call_arguments(root)
    return pipe


def convert_weights(root: str | Path, out_dir: str | Path, dtype: torch.dtype | None = None,
                    vae: str | Path | None = None) -> Path:
    """Write any accepted layout as the native layout (optionally cast, e.g. to fp16).

    ``vae``: a diffusers autoencoder folder that replaces the model's, e.g. one whose decoder was
    fine-tuned with the encoder frozen (training ``model.vae_decoder_only``); it must share the
    model's latent space (same latent channels and ``scaling_factor``). The folder is written
    under a temporary name and renamed at the end; an existing non-empty ``out_dir`` is refused.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise WeightsError(f"{out}: already exists and is not empty")
    kind = inspect_weights(root).kind
    settings_file = Path(root) / SETTINGS_FILE
    recommended_settings(root)  # refuse a malformed settings file before any work
    pipe = load_reenact_pipeline(root) if kind in ("moore-reenact", "native-reenact") else load_pipeline(root)
    if vae is not None:
        pipe.vae = _replacement_vae(vae, pipe)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_pipeline(pipe, tmp, dtype=dtype)
        if settings_file.is_file():  # the model's recommended inference settings travel with it
            shutil.copyfile(settings_file, tmp / SETTINGS_FILE)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def _replacement_vae(folder: str | Path, pipe):
    from diffusers import AutoencoderKL

    try:
        vae = AutoencoderKL.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{folder}: not a loadable autoencoder folder ({str(exc).splitlines()[0]})") from None
    channels, want = int(vae.config.latent_channels), int(pipe.vae.config.latent_channels)
    scale, model_scale = float(vae.config.scaling_factor), float(pipe.model.config.vae_scaling_factor)
    factor, want_factor = downscale_factor(vae.config.block_out_channels), pipe.vae_factor
    if channels != want or abs(scale - model_scale) > 1e-6 * max(1.0, abs(model_scale)) or factor != want_factor:
        raise WeightsError(f"{folder}: its latent space ({channels} channels at 1/{factor} of the frame, "
                           f"scaling_factor {scale:.6g}) is not the model's ({want} channels at 1/{want_factor}, "
                           f"{model_scale:.6g})")
    return vae.to(dtype=next(pipe.vae.parameters()).dtype)


def save_pipeline(pipe, out_dir: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write a pipeline's weights in the native layout."""
    out = Path(out_dir)
    native.save_model(pipe.model, out, dtype=dtype)
    vae, enc = pipe.vae, pipe.image_encoder
    if dtype is not None:
        vae, enc = copy.deepcopy(vae).to(dtype), copy.deepcopy(enc).to(dtype)
    vae.save_pretrained(out / "vae", safe_serialization=True)
    enc.save_pretrained(out / "image_encoder", safe_serialization=True)
    return out


def load_reenact_pipeline(root: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """A :class:`ReenactPipeline` from the released face-reenactment folder (``reenact/`` beside
    ``sd-vae-ft-mse/`` and ``image_encoder/``)."""
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionModelWithProjection

    from ..models.reenact import ReenactModel
    from ..pipelines.pipeline_reenact import ReenactPipeline

    report = inspect_weights(root)
    if report.kind not in ("moore-reenact", "native-reenact"):
        raise WeightsError(f"{report.root}: not a face-reenactment weights folder ({report.kind or 'unknown layout'}): "
                           "expected denoising_unet.pth, reference_unet.pth, pose_guider1.pth, pose_guider2.pth "
                           "(or a native folder with pose_guider2/)")
    if not report.usable:
        raise WeightsError(f"{report.root}: unusable reenactment weights: {(report.problems or report.missing)[0]}")
    if report.kind == "native-reenact":
        model = native.load_model(report.root, reenact=True)
    else:
        model = ReenactModel(model_config_for(report))
        moore.load_moore_reenact_model(model, report.paths["denoising_unet"].parent)
    try:
        vae = AutoencoderKL.from_pretrained(report.paths["vae"], local_files_only=True)
        encoder = CLIPVisionModelWithProjection.from_pretrained(report.paths["image_encoder"], local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"cannot load VAE / image encoder: {str(exc).splitlines()[0]}") from None
    pipe = ReenactPipeline(model, vae, encoder).to(device, dtype)
    pipe.recommended = recommended_call_arguments(root)
    return pipe
