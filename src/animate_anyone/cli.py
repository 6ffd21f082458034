"""Command line: ``animate-anyone <command>``.

User errors (``AnimateAnyoneError``) become one line on stderr and exit status 2; nothing else
is caught, so a bug keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import AnimateAnyoneError


def _cmd_presets(args: argparse.Namespace) -> int:
    from .models.presets import PRESETS, get_preset

    for name in sorted(PRESETS):
        cfg = get_preset(name)
        print(
            f"{name}: UNet widths {cfg.unet['block_out_channels']}, cross-attention {cfg.cross_attention_dim}, "
            f"pose guider {list(cfg.pose_guider_block_out_channels)} -> {cfg.pose_guider_embedding_channels}, "
            f"autoencoder widths {list(cfg.vae['block_out_channels'])}, {cfg.vae['layers_per_block']} per level, "
            f"{cfg.vae['latent_channels']} latent channels at 1/{cfg.vae_factor} of the frame"
            + (f", position term in the reference attention ({cfg.reference_position_features} features)"
               if cfg.reference_position_features else "")
            + (", reference latent added after conv_in" if cfg.reference_latent_input else "")
            + (f", reference detail refiner after the decoder ({cfg.reference_refiner_channels} channels)"
               if cfg.reference_refiner_channels else "")
        )
    return 0


# Modules that add sub-commands: each defines `register(subparsers)`; its handlers import their
# heavy dependencies inside the handler, so `animate-anyone --help` stays fast.
COMMAND_MODULES: list[str] = [
    "animate_anyone.pipelines.cli",
    "animate_anyone.pipelines.reenact_cli",
    "animate_anyone.weights.cli",
    "animate_anyone.pose.cli",
    "animate_anyone.training.cli",
    "animate_anyone.evaluation.cli",
    "animate_anyone.data.cli",
    "animate_anyone.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="animate-anyone", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"animate-anyone {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("presets", help="list the model size presets")
    p.set_defaults(func=_cmd_presets)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def quiet_libraries() -> None:
    """Keep diffusers'/transformers' info chatter and weight-loading bars off the terminal."""
    import logging

    for name in ("diffusers", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
        from diffusers.utils import logging as dlog

        dlog.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("presets", "data"):  # these never load diffusers/transformers
        quiet_libraries()
    try:
        return args.func(args)
    except AnimateAnyoneError as exc:
        print(f"animate-anyone: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
