"""`ttf export <format>`: hand a ttfkit policy checkpoint to another stack.

    ttf export lerobot --checkpoint runs/flow/checkpoints/step_001000 --out exported/flow_lerobot
    ttf export lerobot --checkpoint CKPT --out DIR --align best-of-n --reward smoothness --particles 8
    ttf export lerobot --checkpoint runs/pp_diamond/teacher --diamond runs/pp_diamond --out exported/one_step

`lerobot` writes a LeRobot pretrained-policy directory (policy type "ttfkit": config.json,
model.safetensors, policy_pre/postprocessor.json with ttfkit's normalisation stats) that LeRobot
0.4.4 loads offline (`--policy.path=DIR` in lerobot-eval / lerobot-record / lerobot-train).
`--diamond DIR` (a `ttf distill` directory whose teacher is --checkpoint) carries the Diamond Map inside
model.safetensors: without --align the export is the one-step policy (one map call per chunk); with
--align smc|guidance the map is the posterior sampler instead of GLASS.
Needs `make lerobot` (LeRobot 0.4.4 + the lerobot_policy_ttfkit plugin).
"""

from __future__ import annotations

import argparse
import json
import os

from ttfkit.scripts.options import HelpFormatter, deprecated_alias

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="format", metavar="<format>", required=True)
    p = sub.add_parser("lerobot", help="LeRobot pretrained policy directory (policy type 'ttfkit')",
                       formatter_class=HelpFormatter)
    checkpoint = p.add_argument("--checkpoint", metavar="PATH", required=True, help="ttfkit checkpoint directory")
    deprecated_alias(p, "--policy", checkpoint)
    p.add_argument("--out", required=True, help="directory to create")
    p.add_argument("--weights", choices=("auto", "model", "ema"), default="auto",
                   help="which weights to export (auto: EMA when the checkpoint has it)")
    p.add_argument("--align", choices=("best-of-n", "smc", "guidance", "weighted"), default=None,
                   help="carry inference-time reward alignment in the exported policy (flow only)")
    p.add_argument("--reward", default=None, help="registered reward name (ttfkit.align.list_rewards)")
    p.add_argument("--reward-option", action="append", default=[], metavar="KEY=JSON",
                   help="reward constructor option, e.g. --reward-option scale=2.0 (repeatable)")
    p.add_argument("--particles", type=int, default=8,
                   help="best-of-N candidates / SMC particles / weighted: renoised candidates per guided step")
    p.add_argument("--critic", default=None, help="`ttf critic` directory for --reward critic (weights travel "
                                                   "inside the export)")
    p.add_argument("--diamond", default=None, metavar="DIR",
                   help="`ttf distill` directory of --checkpoint: one-step policy, or the posterior of --align "
                        "smc|guidance (weights travel inside the export)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def main(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local export never needs the Hub
    try:
        from lerobot_policy_ttfkit.export_ttfkit import export_ttfkit_policy
    except ImportError as err:
        raise SystemExit(f"ttf export lerobot needs LeRobot and the ttfkit plugin (`make lerobot`): {err}")
    align = None
    if args.align:
        if not args.reward:
            raise SystemExit("ttf export lerobot: --align needs --reward NAME")
        options = {}
        for item in args.reward_option:
            key, sep, value = item.partition("=")
            if not sep:
                raise SystemExit(f"ttf export lerobot: --reward-option must be KEY=JSON, got {item!r}")
            options[key] = json.loads(value)
        align = {"method": args.align, "reward": args.reward, "reward_options": options,
                 "particles": args.particles}
    critic = None
    if args.reward == "critic":
        if not args.critic:
            raise SystemExit("ttf export lerobot: --reward critic needs --critic DIR (from `ttf critic`)")
        from ttfkit.align.critic import load_critic

        critic = load_critic(args.critic)
    out = export_ttfkit_policy(args.checkpoint, args.out, weights=args.weights, align=align, critic=critic,
                               diamond=args.diamond, overwrite=args.overwrite)
    print(f"wrote {out} (LeRobot policy type 'ttfkit'; load with --policy.path={out})")
    return 0
