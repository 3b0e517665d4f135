"""`ttf export <format>`: hand a ttfkit policy checkpoint to another stack.

    ttf export lerobot --policy runs/flow/checkpoint --out exported/flow_lerobot

`lerobot` writes a LeRobot pretrained-policy directory (policy type "ttfkit": config.json,
model.safetensors, policy_pre/postprocessor.json with ttfkit's normalisation stats) that LeRobot
0.4.4 loads offline (`--policy.path=DIR` in lerobot-eval / lerobot-record / lerobot-train).
Needs `make lerobot` (LeRobot 0.4.4 + the lerobot_policy_ttfkit plugin).
"""

from __future__ import annotations

import argparse
import os

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="format", metavar="<format>", required=True)
    p = sub.add_parser("lerobot", help="LeRobot pretrained policy directory (policy type 'ttfkit')")
    p.add_argument("--policy", required=True, help="ttfkit checkpoint directory")
    p.add_argument("--out", required=True, help="directory to create")
    p.add_argument("--weights", choices=("auto", "model", "ema"), default="auto",
                   help="which weights to export (auto: EMA when the checkpoint has it)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def main(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local export never needs the Hub
    try:
        from lerobot_policy_ttfkit.export_ttfkit import export_ttfkit_policy
    except ImportError as err:
        raise SystemExit(f"ttf export lerobot needs LeRobot and the ttfkit plugin (`make lerobot`): {err}")
    out = export_ttfkit_policy(args.policy, args.out, weights=args.weights, overwrite=args.overwrite)
    print(f"wrote {out} (LeRobot policy type 'ttfkit'; load with --policy.path={out})")
    return 0
