"""Distil a Diamond Map (one-call GLASS posterior/transition sampler) from a flow-policy checkpoint.

Example (the defaults are the CPU recipe measured in docs/results/2026-11-30/diamond-4: batch 256, lr 3e-4 constant
after 500 warm-up steps, an EMA of the map with decay 0.999, 25% diagonal and 75% teacher-trajectory rows, 18000
steps; about 28 minutes on 2 CPU threads for the default MLP policy):
    ttf distill --checkpoint runs/pp_flow/checkpoints/step_002000 --dataset data/pick_place.zarr \\
        --out runs/pp_diamond --target-ratio 2 --threads 2
    ttf distill ... --out runs/pp_diamond --resume     # continue from the last evaluation

Training windows come from the episodes the policy was trained on (the same episode split as ``ttf train``,
--val-fraction/--split-seed); every --eval-every steps the one-call posterior is scored on --check-pairs
held-out windows (ttfkit.align.diamond_check: energy distance to the teacher's 32-step GLASS posterior at
each --check-t), shown on the progress bar beside two-step GLASS, and the checkpoint is written. Training
stops after --steps, once the distance is within --target-ratio x two-step GLASS at every t, or once the command
has run --max-minutes (then the last step is checked, saved and plotted too: `--max-minutes 30` is the 30-minute
CPU budget the recipes in docs/results are judged by).

Writes OUT/config.json, OUT/model.safetensors, OUT/teacher/ (see ttfkit.align.policy_diamond), and
OUT/curve.csv, OUT/curve.png, OUT/training_state.pt (for --resume).
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import time

from ttfkit.scripts.config_file import add_config_argument
from ttfkit.scripts.device import add_device_argument, resolve_device
from ttfkit.scripts.options import deprecated_alias

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    checkpoint = parser.add_argument("--checkpoint", metavar="PATH", required=True,
                                     help="flow-policy checkpoint directory (teacher)")
    deprecated_alias(parser, "--policy", checkpoint)
    parser.add_argument("--dataset", required=True, help="zarr store the policy was trained on")
    parser.add_argument("--out", required=True, help="output directory of the Diamond-Map checkpoint")
    parser.add_argument("--steps", type=int, default=18000, help="optimizer steps (default 18000)")
    parser.add_argument("--batch", type=int, default=256, help="batch size (default 256)")
    parser.add_argument("--lr", type=float, default=3e-4, help="AdamW learning rate (default 3e-4)")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--warmup", type=int, default=None,
                        help="linear warm-up steps (default 500, or a tenth of --steps when that is fewer)")
    parser.add_argument("--schedule", choices=["cosine", "constant"], default="constant",
                        help="lr after the warm-up: cosine decay to 0 at --steps, or constant (default constant)")
    parser.add_argument("--ema", type=float, default=0.999,
                        help="EMA decay of the map's weights; the average is checked, saved and sampled "
                             "(default 0.999; 0: off)")
    parser.add_argument("--diag-fraction", type=float, default=0.25,
                        help="share of the diagonal loss (default 0.25; the paper's mix: 0.75)")
    parser.add_argument("--trajectory-fraction", type=float, default=0.75,
                        help="share regressed onto teacher GLASS trajectories (default 0.75; the paper's mix: 0)")
    parser.add_argument("--trajectory-steps", type=int, default=8, help="teacher calls per trajectory target")
    parser.add_argument("--eval-every", type=int, default=100, help="held-out check and checkpoint interval")
    parser.add_argument("--check-pairs", type=int, default=8, help="held-out (observation, chunk) pairs")
    parser.add_argument("--check-samples", type=int, default=128, help="posterior samples per pair and t")
    parser.add_argument("--check-t", type=float, nargs="+", default=[0.0, 0.3, 0.6, 0.9])
    parser.add_argument("--target-ratio", type=float, default=0.0,
                        help="stop once distance <= ratio x two-step GLASS at every t (0: never)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="held-out episode share (as ttf train)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the episode split (as ttf train: its --split-seed, else its --seed)")
    parser.add_argument("--max-minutes", type=float, default=0.0,
                        help="stop stepping once this command has run this many minutes (0: no limit); the map "
                             "is then checked, saved and plotted as at the end, and --resume continues it")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/training_state.pt")
    parser.add_argument("--seed", type=int, default=0, help="seed of the distillation (network, data order, check)")
    add_device_argument(parser, what="distillation")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="print evaluations instead of a progress bar")
    add_config_argument(parser)


def main(args: argparse.Namespace) -> int:
    import torch

    from ttfkit.align.policy_diamond import Distiller, load_diamond, policy_diamond

    started = time.monotonic()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.max_minutes < 0:
        raise ValueError(f"--max-minutes must be >= 0, got {args.max_minutes}")
    torch.manual_seed(args.seed)
    args.device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    policy, train_set, val_set, dcfg = _setup(args)  # bad input raises: cli prints `ttf distill: error: ...`
    from pathlib import Path

    from torch.utils.data import DataLoader

    out = Path(args.out)
    gen = torch.Generator(device=args.device).manual_seed(args.seed)
    curve: list[dict] = []
    resume = args.resume and (out / "training_state.pt").is_file()
    dmap = load_diamond(out, device=args.device)[0] if resume else policy_diamond(policy, dcfg)
    if args.warmup is None:
        args.warmup = min(500, args.steps // 10)
    run = Distiller(policy, dmap, steps=args.steps, lr=args.lr, weight_decay=args.weight_decay,
                    warmup=args.warmup, ema=args.ema, schedule=args.schedule, generator=gen)
    if resume:
        state = torch.load(out / "training_state.pt", weights_only=False)
        try:
            run.load_state_dict(state)
        except ValueError as err:
            saved = "with" if "trained" in state else "without"
            raise ValueError(f"{out / 'training_state.pt'} was written {saved} an EMA of the map, resumed with "
                             f"--ema {args.ema}: {err}") from None
        curve = state["curve"]
        print(f"resumed {out} at step {run.step}", flush=True)
    check = _check(policy, val_set, args)
    glass2 = check.baselines["glass2"]

    def distances(dmap, prefix: str = "t") -> dict:
        return {f"{prefix}{t:g}": d for t, d in check.diamond_distances(dmap, gen).items()}

    if not curve:
        curve.append({"step": 0, **distances(run.sampler)})
    print(f"distilling a Diamond Map ({sum(p.numel() for p in dmap.parameters()):,} params) from {args.checkpoint} "
          f"on {len(train_set)} windows; held-out check on {args.check_pairs} pairs: "
          + "  ".join(f"t={t:g}: glass1 {check.baselines['glass1'][t]:.3f} glass2 {glass2[t]:.3f} "
                      f"floor {check.baselines['floor'][t]:.3f}" for t in check.ts), flush=True)
    loader = DataLoader(train_set, batch_size=args.batch, shuffle=True, drop_last=len(train_set) > args.batch,
                        generator=torch.Generator().manual_seed(args.seed + run.step))
    meta = {"teacher": str(args.checkpoint), "dataset": str(args.dataset), "steps": args.steps, "batch": args.batch,
            "lr": args.lr, "schedule": args.schedule, "ema": args.ema, "seed": args.seed}
    from tqdm import tqdm

    bar = tqdm(total=args.steps, initial=run.step, desc="distill", disable=args.no_progress, dynamic_ncols=True)
    reached = [_reached(curve[-1], glass2, args.target_ratio)]
    out_of_time = [False]

    def on_step(step: int, metrics: dict) -> bool:
        bar.update(1)
        if args.max_minutes and time.monotonic() - started >= 60 * args.max_minutes:
            out_of_time[0] = True  # the check, save and plot after the loop cover this step
            return True
        if step % args.eval_every and step < args.steps:
            return False
        row = {"step": step, **distances(run.sampler), **metrics}
        if run.ema is not None:  # the trained (not averaged) map too, to see what the average buys
            row.update(distances(run.dmap, "trained_t"))
        curve.append(row)
        ratio = max(row[f"t{t:g}"] / glass2[t] for t in check.ts)
        bar.set_postfix(loss=f"{metrics['loss']:.3g}", ed=" ".join(f"{row[f't{t:g}']:.3f}" for t in check.ts),
                        ratio_vs_glass2=f"{ratio:.2f}")
        if args.no_progress:
            dists = " ".join(f"t={t:g}:{row[f't{t:g}']:.3f}" for t in check.ts)
            print(f"step {step:6d}  loss {metrics['loss']:.4g}  distance {dists}  max ratio {ratio:.2f}", flush=True)
        reached[0] = _reached(row, glass2, args.target_ratio)
        _save(run, out, policy, meta, curve, check)
        return reached[0]

    if run.step < args.steps and not reached[0]:
        run.run(loader, on_step)
    bar.close()
    if curve[-1]["step"] != run.step:
        curve.append({"step": run.step, **distances(run.sampler)})
        reached[0] = _reached(curve[-1], glass2, args.target_ratio)
    _save(run, out, policy, meta, curve, check)
    _plot(curve, check, out / "curve.png")
    last = curve[-1]
    print("held-out energy distance at step {}: ".format(last["step"])
          + "  ".join(f"t={t:g}: diamond {last[f't{t:g}']:.3f} vs glass2 {glass2[t]:.3f}" for t in check.ts)
          + ("  (target reached)" if reached[0] else "")
          + (f"  (stopped at --max-minutes {args.max_minutes:g})" if out_of_time[0] and not reached[0] else ""))
    print(f"wrote {out} (curve.png, curve.csv)")
    return 0


def _setup(args):
    from ttfkit.align.diamond import DiamondConfig
    from ttfkit.data import SequenceDataset
    from ttfkit.policies import FlowPolicy, load

    policy = load(args.checkpoint, device=args.device)
    if not isinstance(policy, FlowPolicy):
        raise ValueError(f"{args.checkpoint} is a {type(policy).__name__}; Diamond Maps need a flow policy")
    cfg = policy.config
    kw = dict(horizon=cfg.horizon, n_obs_steps=cfg.n_obs_steps, n_action_steps=cfg.n_action_steps,
              obs_keys=tuple(cfg.obs_shapes), action_key=cfg.action_key, val_fraction=args.val_fraction,
              seed=args.split_seed)
    if args.val_fraction > 0:
        train_set = SequenceDataset(args.dataset, split="train", **kw)
        val_set = SequenceDataset(args.dataset, split="val", **kw)
    else:  # no held-out episodes: check on training windows (said in the output)
        train_set = val_set = SequenceDataset(args.dataset, split="all", **kw)
        print("ttf distill: --val-fraction 0, the check uses training windows", file=sys.stderr)
    if not args.check_t or any(not 0.0 <= t < 1.0 for t in args.check_t):
        raise ValueError(f"--check-t values must lie in [0, 1), got {args.check_t}")
    dcfg = DiamondConfig(diag_fraction=args.diag_fraction, trajectory_fraction=args.trajectory_fraction,
                         trajectory_steps=args.trajectory_steps)
    return policy, train_set, val_set, dcfg


def _check(policy, val_set, args):
    import torch

    from ttfkit.align.diamond_check import build_check

    g = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(len(val_set), generator=g)[: args.check_pairs].tolist()
    items = [val_set[i] for i in idx]
    obs = {k: torch.stack([torch.as_tensor(it["obs"][k]) for it in items]) for k in items[0]["obs"]}
    actions = torch.stack([torch.as_tensor(it["action"]) for it in items])
    with torch.no_grad():
        cond = policy.encode_obs(obs)
        x1 = policy._normalize(policy.config.action_key, actions.to(policy.device))
    return build_check(policy, cond, x1, ts=tuple(args.check_t), n=args.check_samples, seed=args.seed)


def _reached(row: dict, glass2: dict, ratio: float) -> bool:
    return ratio > 0 and all(row[f"t{t:g}"] <= ratio * d for t, d in glass2.items())


def _save(run, out, policy, meta, curve, check) -> None:
    import torch

    from ttfkit.align.policy_diamond import save_diamond

    buf = io.BytesIO()
    torch.save({**run.state_dict(), "curve": curve}, buf)
    save_diamond(run.sampler, out, teacher=policy, metadata={**meta, "step": run.step},
                 extra_files={"training_state.pt": buf.getvalue(), "curve.csv": _csv(curve, check).encode()})


def _csv(curve: list[dict], check) -> str:
    keys = sorted({k for row in curve for k in row} - {"step"})
    lines = ["step," + ",".join(keys)]
    lines += [f"{row['step']}," + ",".join(f"{row[k]:.6g}" if k in row else "" for k in keys) for row in curve]
    for name, vals in check.baselines.items():
        lines.append(f"# {name}: " + " ".join(f"t={t:g}:{v:.6g}" for t, v in vals.items()))
    return "\n".join(lines) + "\n"


def _plot(curve: list[dict], check, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    steps = [row["step"] for row in curve]
    for i, t in enumerate(check.ts):
        color = f"C{i}"
        ax.plot(steps, [row[f"t{t:g}"] for row in curve], color=color, label=f"Diamond, 1 call, t={t:g}")
        ax.axhline(check.baselines["glass2"][t], color=color, ls="--", lw=1)
        if check.baselines["floor"][t] > 0:  # the estimate can be <= 0 when the floor is negligible
            ax.axhline(check.baselines["floor"][t], color=color, ls=":", lw=1)
    ax.set_yscale("log")
    low = min(min(row[f"t{t:g}"] for row in curve for t in check.ts), min(check.baselines["glass2"].values()))
    ax.set_ylim(bottom=max(low / 3, 1e-4))
    ax.set_xlabel("distillation step")
    ax.set_ylabel("energy distance to 32-step GLASS posterior")
    ax.set_title("held-out one-call posterior\n(dashed: 2-step GLASS; dotted: noise floor if > 0)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
