"""``animate-anyone train CONFIG.yaml``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a stage (vae / image / video) from a YAML config",
        description="Train one stage. Multi-GPU / multi-process: `accelerate launch -m animate_anyone.cli train ...` "
        "or `torchrun --nproc_per_node N -m animate_anyone.cli train ...`.",
    )
    p.add_argument("config", help="YAML training config (see configs/train/)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set max_steps=100 --set data.width=256")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    import json

    from .config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=1))
        return 0
    from .trainer import Trainer

    out = Trainer(cfg).train(resume=args.resume)
    print(f"weights written to {out}")
    return 0
