"""Distil a Diamond Map (one-call GLASS posterior/transition sampler) from a flow-policy checkpoint.

Example:
    ttf distill --policy runs/pp_flow/checkpoints/step_002000 --dataset data/pick_place.zarr \\
        --out runs/pp_diamond --steps 2000 --batch 256 --lr 3e-4

Writes OUT/config.json, OUT/model.safetensors and OUT/teacher/ (the policy checkpoint), see
ttfkit.align.policy_diamond; load it with ``ttfkit.align.policy_diamond.load_diamond``. The dataset
windows use the policy's horizon / n_obs_steps / obs keys. Prints the loss every --log-every steps.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ttfkit.scripts.device import add_device_argument, resolve_device

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="flow-policy checkpoint directory (teacher)")
    parser.add_argument("--dataset", required=True, help="zarr store the policy was trained on")
    parser.add_argument("--out", required=True, help="output directory of the Diamond-Map checkpoint")
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps (default 2000)")
    parser.add_argument("--batch", type=int, default=256, help="batch size (default 256)")
    parser.add_argument("--lr", type=float, default=3e-4, help="AdamW learning rate, cosine decay (default 3e-4)")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--diag-fraction", type=float, default=0.75, help="share of the diagonal loss (0.75)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=100)
    add_device_argument(parser, what="distillation")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def main(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader

    from ttfkit.align.diamond import DiamondConfig
    from ttfkit.align.policy_diamond import distill_policy, policy_diamond, save_diamond
    from ttfkit.data import SequenceDataset
    from ttfkit.policies import FlowPolicy, load

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.manual_seed(args.seed)
    args.device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        policy = load(args.policy, device=args.device)
        if not isinstance(policy, FlowPolicy):
            raise ValueError(f"{args.policy} is a {type(policy).__name__}; Diamond Maps need a flow policy")
        cfg = policy.config
        dataset = SequenceDataset(args.dataset, horizon=cfg.horizon, n_obs_steps=cfg.n_obs_steps,
                                  n_action_steps=cfg.n_action_steps, obs_keys=tuple(cfg.obs_shapes),
                                  action_key=cfg.action_key, split="all")
        dcfg = DiamondConfig(diag_fraction=args.diag_fraction)
    except (KeyError, ValueError, FileNotFoundError) as err:
        print(f"ttf distill: {err}", file=sys.stderr)
        return 2
    gen = torch.Generator(device=args.device).manual_seed(args.seed)
    loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, drop_last=len(dataset) > args.batch,
                        generator=torch.Generator().manual_seed(args.seed))

    def on_step(step: int, metrics: dict) -> None:
        if step % args.log_every == 0 or step == args.steps:
            text = "  ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            print(f"step {step:6d}  {text}", flush=True)

    dmap = policy_diamond(policy, dcfg)
    print(f"distilling a Diamond Map ({sum(p.numel() for p in dmap.parameters()):,} params) from {args.policy} "
          f"on {len(dataset)} windows", flush=True)
    dmap = distill_policy(policy, loader, steps=args.steps, lr=args.lr, weight_decay=args.weight_decay,
                          dmap=dmap, generator=gen, on_step=on_step)
    meta = {"teacher": str(args.policy), "dataset": str(args.dataset), "steps": args.steps, "batch": args.batch,
            "lr": args.lr, "seed": args.seed}
    save_diamond(dmap, args.out, teacher=policy, metadata=meta)
    print(f"wrote {args.out}")
    return 0
