"""``animate-anyone weights check DIR`` and ``animate-anyone weights convert DIR OUT``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="inspect or convert a weights folder")
    wsub = p.add_subparsers(dest="weights_command", required=True)
    c = wsub.add_parser("check", help="report the layout of a weights folder and whether it is usable")
    c.add_argument("folder")
    c.set_defaults(func=run_check)
    v = wsub.add_parser("convert", help="write any accepted layout as the native safetensors layout")
    v.add_argument("folder")
    v.add_argument("out")
    v.add_argument("--fp16", action="store_true", help="store the weights in float16")
    v.add_argument("--vae", help="replace the autoencoder by this folder (same latent space, e.g. a decoder fine-tune)")
    v.set_defaults(func=run_convert)


def run_check(args: argparse.Namespace) -> int:
    from ..weights.layouts import check_weights

    report = check_weights(args.folder)
    print(report.summary())
    return 0 if report.usable else 1


def run_convert(args: argparse.Namespace) -> int:
    import torch

    from ..weights.layouts import convert_weights

    out = convert_weights(args.folder, args.out, dtype=torch.float16 if args.fp16 else None, vae=args.vae)
    print(f"wrote native weights to {out}")
    return 0
