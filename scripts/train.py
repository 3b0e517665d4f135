"""Train a flow or diffusion policy on a zarr dataset.

Example::

    ttf train --dataset data/pick_place.zarr --policy-type flow --backbone mlp --optim adamw \\
        --steps 3000 --batch 256 --lr 3e-4 --ckpt-every 1000 --out runs/pp_flow
    ttf train --resume runs/pp_flow                    # continue from the newest checkpoint
    ttf train --config runs/pp_flow/train_config.json --seed 1 --out runs/pp_flow_s1   # same run, seed 1
    torchrun --nproc_per_node 2 -m ttfkit.scripts.cli train ...   # DDP (gloo on CPU, nccl on GPU)

Writes RUN_DIR/train_config.json, RUN_DIR/metrics.csv and RUN_DIR/checkpoints/step_XXXXXX/
(load one with ``ttfkit.policies.load``; ``ttf eval`` takes the same path).
"""

from __future__ import annotations

import argparse
import logging
import os

from ttfkit.scripts.config_file import add_config_argument
from ttfkit.scripts.device import add_device_argument
from ttfkit.scripts.options import KeyValueAction, csv_of, deprecated_alias

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ttfkit.policies.trainer import TrainConfig

    d = TrainConfig(dataset="", out="")
    parser.add_argument("--dataset", required=True, help="zarr store (ReplayBuffer layout)")
    parser.add_argument("--out", required=True, help="run directory")
    add_config_argument(parser)
    policy = parser.add_argument("--policy-type", dest="policy", default=d.policy, choices=["flow", "diffusion"],
                                 help="policy to build")
    deprecated_alias(parser, "--policy", policy)
    parser.add_argument("--backbone", default=d.backbone, choices=["unet", "mlp", "transformer"])
    parser.add_argument("--optim", default=d.optim, help="adamw | muon | dopr-adamw | dopr-muon")
    parser.add_argument("--steps", type=int, default=d.steps)
    parser.add_argument("--batch", type=int, default=d.batch, help="global batch size")
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--warmup", dest="warmup_steps", metavar="STEPS", type=int, default=d.warmup_steps, help="linear warmup steps")
    parser.add_argument("--grad-clip", type=float, default=d.grad_clip, help="max grad norm (0: off)")
    parser.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    parser.add_argument("--log-every", type=int, default=d.log_every)
    parser.add_argument("--seed", type=int, default=d.seed,
                        help="seed of initialisation, data order, loss noise and (without --split-seed) the validation split")
    parser.add_argument("--split-seed", type=int, default=None,
                        help="seed of the validation split and the validation loss's noise (default: --seed); the same "
                             "for every training seed of a study trains them on the same episodes")
    parser.add_argument("--val-fraction", type=float, default=d.val_fraction)
    parser.add_argument("--val-max-samples", type=int, default=d.val_max_samples)
    parser.add_argument("--horizon", type=int, default=d.horizon)
    parser.add_argument("--n-obs-steps", type=int, default=d.n_obs_steps)
    parser.add_argument("--n-action-steps", type=int, default=d.n_action_steps)
    parser.add_argument("--obs-keys", nargs="+", default=list(d.obs_keys))
    parser.add_argument("--filter-key", default=None, metavar="NAME",
                        help="train on the store's named episode list only (robomimic mask/ filter keys)")
    parser.add_argument("--normalizer-mode", default=d.normalizer_mode, choices=["minmax", "meanstd"])
    parser.add_argument("--no-ema", dest="ema", action="store_false", help="do not keep an EMA of the weights")
    parser.add_argument("--policy-option", dest="policy_options", action=KeyValueAction, metavar="KEY=VALUE",
                        help="policy config field, e.g. num_steps=5, sampler=midpoint, prediction_type=sample")
    parser.add_argument("--backbone-option", dest="backbone_options", action=KeyValueAction, metavar="KEY=VALUE",
                        help="backbone config field, e.g. hidden_dim=512 or down_dims=[256,512,1024]")
    parser.add_argument("--optim-option", dest="optim_options", action=KeyValueAction, metavar="KEY=VALUE",
                        help="optimizer config field, e.g. damping=1e-3 or inverse_every=10 (dopr-*)")
    parser.add_argument("--num-workers", type=int, default=d.num_workers, help="DataLoader worker processes")
    parser.add_argument("--stream", action="store_true",
                        help="read windows from zarr chunks through a bounded cache (stores larger than memory)")
    parser.add_argument("--cache-mb", type=float, default=d.cache_mb,
                        help="chunk-cache budget in MiB with --stream, shared by the workers")
    add_device_argument(parser, what="training")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast of forward and loss (GPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads per process (1 is fastest on a busy machine)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                        help="continue from the newest checkpoint: of RUN_DIR with its saved train_config.json "
                             "(no other flag needed), or of --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--log", type=csv_of(str), default=d.log, metavar="tensorboard[,wandb]",
                        help="experiment loggers (RUN_DIR/tensorboard/, RUN_DIR/wandb/ offline; ttfkit.policies.loggers)")


def config_keys() -> set[str]:
    """Keys a --config file may hold beyond the options: every TrainConfig field (train_config.json)."""
    import dataclasses

    from ttfkit.policies.trainer import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)}


def implied_config(argv: list[str]) -> str | None:
    """``--resume RUN_DIR``: RUN_DIR/train_config.json supplies every option (and --out is RUN_DIR)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--resume", nargs="?", const=True, default=False)
    resume = pre.parse_known_args(argv)[0].resume
    return None if isinstance(resume, bool) else os.path.join(resume, "train_config.json")


def config_from_args(args: argparse.Namespace):
    """The TrainConfig of parsed options (``--resume RUN_DIR``: out is RUN_DIR, wherever the run was written)."""
    import dataclasses

    from ttfkit.policies.trainer import TrainConfig

    if isinstance(args.resume, str):
        args.out = args.resume
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    return TrainConfig(**{**values, "obs_keys": tuple(values["obs_keys"])})


def main(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ttfkit.policies.trainer import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = config_from_args(args)
    rank = int(os.environ.get("RANK", "0"))
    bar = None

    def progress(step: int, metrics: dict) -> None:
        nonlocal bar
        if rank != 0 or args.no_progress:
            return
        if bar is None:  # created on the first step, after the run directory checks passed
            bar = tqdm(total=config.steps, initial=step - 1, desc=f"train {config.policy}/{config.backbone}",
                       unit="step", dynamic_ncols=True)
        val = metrics["val_loss"]
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}",
                        val="-" if val != val else f"{val:.4f}", refresh=False)
        bar.update(step - bar.n)  # tqdm's rate and ETA come from these increments

    try:  # errors reach the CLI's one error path (ttfkit.scripts.cli)
        with logging_redirect_tqdm():
            ckpt = train(config, resume=bool(args.resume), progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if rank == 0:
        print(f"done: {config.steps} steps; last checkpoint {ckpt}; metrics {os.path.join(config.out, 'metrics.csv')}")
    return 0
