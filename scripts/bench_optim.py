"""Benchmark DoPr: step-time overhead against its base optimizer, and what amortisation costs in quality.

Usage:
    python scripts/bench_optim.py                      # both nets + the regression toy
    python scripts/bench_optim.py --nets mlp --reps 5 --out bench_optim.jsonl
    python scripts/bench_optim.py --nets --toy-seeds 5 # toy only

Part 1 (time): one step = forward + backward + optimizer step of the default flow policy
(``ttfkit.policies.make_policy("flow", backbone="mlp" | "unet")``, or the pixel policy: ``--nets pixel``; its ``compute_loss``) at batch 256,
for AdamW, Muon and DoPr on each. DoPr's per-step cost splits into parts that different settings
pay at different rates, and each part is timed as a full step in the same process, round-robin with
the baseline (so load drift hits all alike):

    apply   DoPr with no recording and no refresh after step 0: base + G P per layer
    stats   DoPr recording every step, never refreshing:        + the forward hooks' statistics (Z^T Z;
                                                                  cheap AP layers after step 0: the sketch)
    full    DoPr (stat_every=1, inverse_every=1):                + a refresh every step (Cholesky + inverse;
                                                                  cheap AP: Nystrom from the sketch)

The amortised setting (s, i) costs apply + (stats - apply) / s + (full - stats) / i per step; its
ratio to the baseline is computed per repetition and summarised by median [min, max]; "min/min" is
the ratio of the fastest repetitions (the least disturbed by other processes on a shared CPU). Timing a
(10, 50) window directly would need 50 steps per repetition, which the CPU machine cannot afford
for the U-Net; the (1, 1) row is a direct measurement.

Part 2 (quality): steps until ||W - W*|| / ||W*|| < 0.05 for a linear model on y = W* x with
correlated inputs (covariance eigenvalues 1 .. 1e-3), AdamW vs DoPr-AdamW at the same learning
rate, median over seeds, and the share of DoPr's advantage each amortised setting keeps.

Prints one JSON line per measurement (and appends them to --out), then a summary table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from ttfkit.optim import DoPr, make_optimizer
from ttfkit.optim.dopr import DEFAULT_RANK
from ttfkit.optim.lowrank import apply_lowrank, lowrank_inverse

GRID = [(1, 1), (1, 10), (10, 10), (10, 50)]
NEVER = 10**9  # stat_every / inverse_every that never fire after step 0


def _env() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, check=False).stdout.strip()
    except OSError:
        commit = "unknown"
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()})"
    return {"device": device, "torch": torch.__version__, "commit": commit, "threads": torch.get_num_threads()}


def _policy_and_batch(backbone: str, batch_size: int, device: torch.device):
    """The default flow policy on ``backbone`` ("mlp", "unet") with state observations, or ("pixel") the pixel
    policy of docs/results/2026-11-30/pixels: MLP backbone, one 84x84 camera through the 16-channel conv
    encoder (random 0.9 crop) plus ``agent_pos``, one observation step."""
    from ttfkit.policies import make_policy

    torch.manual_seed(0)
    if backbone == "pixel":
        policy = make_policy("flow", obs_shapes={"agent_pos": (4,), "pixels": (3, 84, 84)}, action_dim=4,
                             n_obs_steps=1, backbone="mlp",
                             encoder={"image_encoder": "conv", "image_channels": 16, "crop_ratio": 0.9})
    else:
        policy = make_policy("flow", obs_shapes={"agent_pos": (10,), "environment_state": (20,)}, action_dim=4,
                             backbone=backbone)
    return policy.to(device), _batch(batch_size, device, seed=1, pixels=backbone == "pixel")


def _batch(batch_size: int, device: torch.device, seed: int, pixels: bool = False) -> dict:
    gen = torch.Generator().manual_seed(seed)
    if pixels:
        obs = {"agent_pos": torch.randn(batch_size, 1, 4, generator=gen),
               "pixels": torch.rand(batch_size, 1, 3, 84, 84, generator=gen)}
    else:
        obs = {"agent_pos": torch.randn(batch_size, 2, 10, generator=gen),
               "environment_state": torch.randn(batch_size, 2, 20, generator=gen)}
    batch = {"obs": obs, "action": torch.randn(batch_size, 16, 4, generator=gen)}
    return {"obs": {k: v.to(device) for k, v in batch["obs"].items()}, "action": batch["action"].to(device)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _step_seconds(policy: nn.Module, opt: torch.optim.Optimizer, batch: dict, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    loss, _ = policy.compute_loss(batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    _sync(device)
    return time.perf_counter() - start


def _summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def bench_time(backbone: str, base: str, reps: int, batch_size: int, device: torch.device, lr: float,
               ranks: tuple[int | None, ...] = (None, DEFAULT_RANK)) -> list[dict]:
    """Round-robin timing of the base optimizer and, per AP form (rank None: exact), DoPr's three cost
    parts; derived amortised rows."""
    policy, batch = _policy_and_batch(backbone, batch_size, device)
    variants = {"base": lambda m: make_optimizer(base, m, lr=lr)}
    for rank in ranks:
        ap = _ap_label(rank)
        variants[f"{ap} apply"] = lambda m, r=rank: DoPr(m, base=base, lr=lr, rank=r, stat_every=NEVER,
                                                        inverse_every=NEVER)
        variants[f"{ap} stats"] = lambda m, r=rank: DoPr(m, base=base, lr=lr, rank=r, stat_every=1,
                                                        inverse_every=NEVER)
        variants[f"{ap} full"] = lambda m, r=rank: DoPr(m, base=base, lr=lr, rank=r, stat_every=1, inverse_every=1)
    runs = {}
    for label, build in variants.items():  # one model copy each: preconditioners hook their own model
        model = copy.deepcopy(policy)
        runs[label] = (model, build(model))
    times = {label: [] for label in variants}
    for rep in range(reps + 1):  # repetition 0 is the warm-up (and DoPr's first factorisation)
        for label, (model, opt) in runs.items():
            seconds = _step_seconds(model, opt, batch, device)
            if rep:
                times[label].append(seconds)
    n_params = sum(p.numel() for p in policy.parameters())
    rows = []
    base_t = times["base"]
    fastest = {label: min(values) for label, values in times.items()}
    for label in variants:
        rows.append({"net": backbone, "params": n_params, "base": base, "variant": label, "measured": True,
                     "seconds": _summary(times[label]),
                     "ratio": _summary([t / b for t, b in zip(times[label], base_t)]),
                     "ratio_of_min": fastest[label] / fastest["base"]})
    for rank in ranks:
        ap = _ap_label(rank)
        apply, stats, full = times[f"{ap} apply"], times[f"{ap} stats"], times[f"{ap} full"]
        for s, i in GRID:
            per_rep = [(a + (st - a) / s + (f - st) / i) / b for a, st, f, b in zip(apply, stats, full, base_t)]
            of_min = (min(apply) + (min(stats) - min(apply)) / s + (min(full) - min(stats)) / i) / fastest["base"]
            rows.append({"net": backbone, "params": n_params, "base": base, "variant": f"{ap} (s={s},i={i})",
                         "rank": rank, "stat_every": s, "inverse_every": i, "measured": (s, i) == (1, 1),
                         "ratio": _summary(per_rep), "ratio_of_min": of_min})
    return rows


def bench_schedule(backbone: str, base: str, reps: int, batch_size: int, device: torch.device, lr: float,
                   window: int = 50, ranks: tuple[int | None, ...] = (None, DEFAULT_RANK)) -> list[dict]:
    """Direct timing of DoPr's default schedule: ``window`` consecutive steps (one full refresh cycle,
    stat_every=10, inverse_every=50) against as many base steps; the variants take turns step by step,
    so load drift on a shared machine hits all alike, and each variant's time per window is summed."""
    policy, batch = _policy_and_batch(backbone, batch_size, device)
    variants = {"base": lambda m: make_optimizer(base, m, lr=lr)}
    for rank in ranks:
        variants[f"{_ap_label(rank)} (s=10,i=50) direct"] = lambda m, r=rank: DoPr(m, base=base, lr=lr, rank=r)
    runs = {label: (model, build(model)) for label, build in variants.items()
            for model in [copy.deepcopy(policy)]}
    times = {label: [] for label in variants}
    for rep in range(reps + 1):  # repetition 0: warm-up (DoPr's step 0 records and factorises)
        seconds = dict.fromkeys(runs, 0.0)
        for _ in range(window):
            for label, (model, opt) in runs.items():
                seconds[label] += _step_seconds(model, opt, batch, device)
        if rep:
            for label in runs:
                times[label].append(seconds[label] / window)
    base_t = times["base"]
    return [{"net": backbone, "base": base, "variant": label, "measured": True, "window": window,
             "seconds": _summary(times[label]), "ratio": _summary([t / b for t, b in zip(times[label], base_t)]),
             "ratio_of_min": min(times[label]) / min(base_t)} for label in variants]


def _ap_label(rank: int | None) -> str:
    return "exact" if rank is None else f"rank{rank}"


def flop_floor(backbone: str, batch_size: int, device: torch.device, rank: int | None = None) -> dict:
    """Analytic lower bound on DoPr's per-step ratio: the AP product G P costs 2 d_out d^2 per covered
    layer (d = inputs + bias) every step (exact AP; cheap AP of rank k on layers with d > 2k: 4 d_out d k),
    against ~6 n d_in d_out for that layer's forward + backward (n = rows: batch x positions). Counts
    covered layers only, so the true base step costs more."""
    policy, batch = _policy_and_batch(backbone, batch_size, device)
    opt = DoPr(policy, stat_every=1, inverse_every=NEVER, rank=rank)
    loss, _ = policy.compute_loss(batch)
    loss.backward()
    train = ap = 0.0
    for layer in opt.preconditioner.layers.values():
        rows = layer.count.item()  # rows the forward hook saw
        d_out, d_in = layer.weight.shape[0], layer.weight[0].numel()
        d = d_in + (layer.bias is not None)
        train += 6 * rows * d_in * d_out
        ap += 4 * d_out * d * rank if rank is not None and d > 2 * rank else 2 * d_out * d * d
    return {"net": backbone, "batch": batch_size, "ap": _ap_label(rank), "train_gflop": train / 1e9,
            "ap_gflop": ap / 1e9, "flop_floor": 1 + ap / train}


def bench_accuracy(backbone: str, batch_size: int, device: torch.device, ranks=(32, 64, 128),
                   blocks=(64, 128, 256), warm_steps: int = 30, window: int = 5) -> list[dict]:
    """How close cheap forms of AP come to exact AP's M = G (Sigma + tau I)^-1 on the policy's own layers.

    The policy trains ``warm_steps`` exact-DoPr steps on the benchmark batch; Sigma is then the mean over
    ``window`` fresh batches (the default refresh window: 50 steps / stat_every 10) and G the last batch's
    gradient. For every covered layer with d > 128: cosine of M_approx with M_exact (float64) for the
    rank-k form (:mod:`ttfkit.optim.lowrank`, k in ``ranks``; G P costs 4 d_out d k) and for a
    block-diagonal Sigma (blocks of b in ``blocks``; 2 d_out d b, so block b costs what rank b/2 does),
    and for the raw gradient (no AP).
    """
    policy, batch = _policy_and_batch(backbone, batch_size, device)
    opt = DoPr(policy, lr=1e-3, stat_every=1, inverse_every=1, rank=None)
    for _ in range(warm_steps):
        _step_seconds(policy, opt, batch, device)
    ap = opt.preconditioner
    for layer in ap.layers.values():
        layer.clear()
    ap._recording = True
    for seed in range(window):
        opt.zero_grad()
        policy.compute_loss(_batch(batch_size, device, seed=100 + seed, pixels=backbone == "pixel"))[0].backward()
    rows = []
    for name, layer in ap.layers.items():
        full = (layer.acc / layer.acc[-1, -1]).double()
        sigma = full if layer.bias is not None else full[:-1, :-1]
        d = sigma.shape[0]
        if d <= 128:
            continue
        tau = ap.damping * sigma.trace().item() / d
        g = layer.weight.grad.reshape(layer.weight.shape[0], -1).double()
        if layer.bias is not None:
            g = torch.cat([g, layer.bias.grad.double()[:, None]], 1)
        exact = torch.linalg.solve(sigma + tau * torch.eye(d, dtype=sigma.dtype, device=sigma.device), g.T).T
        cos = lambda m: torch.nn.functional.cosine_similarity(m.flatten(), exact.flatten(), 0).item()  # noqa: E731
        row = {"net": backbone, "layer": name, "d": d, "d_out": g.shape[0], "cos_raw": cos(g)}
        for k in ranks:
            if k < d:
                inverse = lowrank_inverse(sigma, tau, k, iters=6, generator=torch.Generator().manual_seed(0))
                row[f"cos_rank{k}"] = cos(apply_lowrank(g, inverse))
        for b in blocks:
            m = torch.cat([torch.linalg.solve(sigma[i:i + b, i:i + b] + tau * torch.eye(min(b, d - i), dtype=g.dtype),
                                              g[:, i:i + b].T).T for i in range(0, d, b)], 1)
            row[f"cos_block{b}"] = cos(m)
        rows.append(row)
    return rows


def regression_steps(name: str, seed: int, lr: float, target: float = 0.05, max_steps: int = 2000, dim: int = 16,
                     **kw) -> int:
    """Steps until ||W - W*|| / ||W*|| < target; inputs x = A g (dim features, 64 rows per batch) with
    cov(x) eigenvalues log-spaced over 1 .. 1e-3."""
    gen = torch.Generator().manual_seed(seed)
    d = dim
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen))
    mix = q * torch.logspace(0, -1.5, d)
    w_true = torch.randn(4, d, generator=gen)
    torch.manual_seed(seed)
    model = nn.Linear(d, 4)
    opt = make_optimizer(name, model, lr=lr, weight_decay=0.0, **kw)
    for step in range(max_steps):
        if (model.weight - w_true).norm() < target * w_true.norm():
            return step
        x = torch.randn(64, d, generator=gen) @ mix.T
        opt.zero_grad()
        ((model(x) - x @ w_true.T) ** 2).sum(1).mean().backward()
        opt.step()
    return max_steps


def bench_toy_rank(seeds: int, lr: float, dims=(16, 64, 256)) -> list[dict]:
    """Steps to target for exact AP and rank-k AP (k up to d/4, the cheap form's range d > 2k) per toy
    width, per-batch (1, 1) and at DoPr's default schedule (10, 50); kept = share of exact AP's
    advantage over AdamW that the rank-k form keeps at the same schedule."""
    rows = []
    for dim in dims:
        steps = lambda name, **kw: statistics.median(  # noqa: E731
            regression_steps(name, seed, lr, dim=dim, max_steps=4000, **kw) for seed in range(seeds))
        adamw = steps("adamw")
        rows.append({"toy": "correlated-regression", "dim": dim, "lr": lr, "optimizer": "adamw", "median_steps": adamw})
        for s, i in ((1, 1), (10, 50)):
            exact = steps("dopr-adamw", stat_every=s, inverse_every=i, rank=None)
            for rank in (None, dim // 16, dim // 8, dim // 4):
                got = exact if rank is None else steps("dopr-adamw", stat_every=s, inverse_every=i, rank=rank)
                rows.append({"toy": "correlated-regression", "dim": dim, "lr": lr, "optimizer": "dopr-adamw",
                             "rank": rank, "stat_every": s, "inverse_every": i, "median_steps": got,
                             "advantage_kept": (adamw - got) / (adamw - exact) if adamw != exact else float("nan")})
    return rows


def bench_toy(seeds: int, lrs: list[float]) -> list[dict]:
    rows = []
    for lr in lrs:
        adamw = statistics.median(regression_steps("adamw", s, lr) for s in range(seeds))
        rows.append({"toy": "correlated-regression", "lr": lr, "optimizer": "adamw", "median_steps": adamw})
        best = None
        for ema in (None, 0.9):
            for s, i in GRID:
                steps = statistics.median(
                    regression_steps("dopr-adamw", seed, lr, stat_every=s, inverse_every=i, ema=ema, rank=None)
                    for seed in range(seeds))
                best = steps if best is None else best
                rows.append({"toy": "correlated-regression", "lr": lr, "optimizer": "dopr-adamw", "ema": ema,
                             "stat_every": s, "inverse_every": i, "median_steps": steps,
                             "advantage_kept": (adamw - steps) / (adamw - best) if adamw != best else float("nan")})
    return rows


def bench_toy_damping(seeds: int, lr: float, dampings: list[float]) -> list[dict]:
    """Steps to target against the damping (trace mode), per-step and amortised (10, 50)."""
    rows = []
    for damping in dampings:
        for s, i in ((1, 1), (10, 50)):
            steps = statistics.median(regression_steps("dopr-adamw", seed, lr, damping=damping, stat_every=s,
                                                        inverse_every=i, rank=None) for seed in range(seeds))
            rows.append({"toy": "correlated-regression", "lr": lr, "optimizer": "dopr-adamw", "ema": None,
                         "damping": damping, "stat_every": s, "inverse_every": i, "median_steps": steps,
                         "advantage_kept": float("nan")})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", nargs="*", default=["mlp", "unet"],
                        help="policies to time: mlp, unet (state), pixel (conv16 camera encoder + MLP)")
    parser.add_argument("--bases", nargs="*", default=["adamw", "muon"])
    parser.add_argument("--ranks", nargs="*", default=["exact", str(DEFAULT_RANK)],
                        help="AP forms to time: 'exact' and/or cheap-AP ranks")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions (after one warm-up); 0: skip the"
                        " per-part timing")
    parser.add_argument("--unet-reps", type=int, default=None, help="repetitions for the unet (default --reps)")
    parser.add_argument("--direct-nets", nargs="*", default=["mlp"],
                        help="nets whose default schedule is also timed directly over 50-step windows")
    parser.add_argument("--direct-reps", type=int, default=3)
    parser.add_argument("--accuracy-nets", nargs="*", default=["mlp", "unet"],
                        help="nets on whose layers cheap AP is compared with exact AP")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--toy-seeds", type=int, default=5)
    parser.add_argument("--toy-lrs", type=float, nargs="*", default=[1e-2])
    parser.add_argument("--toy-dampings", type=float, nargs="*", default=[],
                        help="also sweep DoPr's damping on the toy (at the first --toy-lrs)")
    parser.add_argument("--toy-rank-dims", type=int, nargs="*", default=[16, 64, 256],
                        help="toy widths for exact vs rank-k AP (at the first --toy-lrs)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ranks = tuple(None if r == "exact" else int(r) for r in args.ranks)
    env = _env()
    print(json.dumps({"env": env, "args": {k: str(v) for k, v in vars(args).items()}}), flush=True)
    rows = []

    def emit(row):
        row = {**row, **env, "loadavg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out is not None:
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")

    for net in args.nets:
        reps = args.unet_reps if (net == "unet" and args.unet_reps) else args.reps
        for base in args.bases:
            for row in bench_time(net, base, reps, args.batch_size, device, args.lr, ranks) if reps else []:
                emit(row)
            if net in args.direct_nets:
                for row in bench_schedule(net, base, args.direct_reps, args.batch_size, device, args.lr, ranks=ranks):
                    emit(row)
        for rank in ranks:
            emit(flop_floor(net, args.batch_size, device, rank))
    for net in args.accuracy_nets:
        for row in bench_accuracy(net, args.batch_size, device):
            emit(row)
    if args.toy_seeds:
        for row in bench_toy(args.toy_seeds, args.toy_lrs):
            emit(row)
        for row in bench_toy_damping(args.toy_seeds, args.toy_lrs[0], args.toy_dampings):
            emit(row)
        if args.toy_rank_dims:
            for row in bench_toy_rank(args.toy_seeds, args.toy_lrs[0], args.toy_rank_dims):
                emit(row)

    print(f"\n# {env['device']}, torch {env['torch']}, commit {env['commit']}, threads {env['threads']}")
    for r in rows:
        print(_format(r))
    return 0


def _format(r: dict) -> str:
    load = f"  (load {r['loadavg']:.1f})" if r.get("loadavg") is not None else ""
    if "flop_floor" in r:
        return (f"{r['net']:5s} FLOP floor of DoPr ({r['ap']}) at batch {r['batch']}: x{r['flop_floor']:.2f} "
                f"(G P {r['ap_gflop']:.2f} GFLOP vs {r['train_gflop']:.2f} GFLOP forward+backward of covered layers)")
    if "layer" in r:
        cos = " ".join(f"{k[4:]}={v:.2f}" for k, v in r.items() if k.startswith("cos_"))
        return f"{r['net']:5s} {r['layer']:28s} d={r['d']:5d} out={r['d_out']:4d} cosine to exact AP: {cos}"
    if "net" in r:
        ratio = r["ratio"]
        secs = f"{r['seconds']['median']:.3f}s " if "seconds" in r else " " * 8
        kind = "measured" if r["measured"] else "derived"
        return (f"{r['net']:5s} {r['base']:6s} {r['variant']:28s} {secs} x{ratio['median']:.2f} "
                f"[{ratio['min']:.2f}, {ratio['max']:.2f}]  min/min x{r['ratio_of_min']:.2f}  {kind}{load}")
    if r["optimizer"] == "adamw":
        extra = ""
    else:
        extra = (f" rank={r.get('rank')} ema={r.get('ema')} s={r['stat_every']} i={r['inverse_every']}"
                 f" damping={r.get('damping', 'default')} kept={r['advantage_kept']:.2f}")
    return f"toy d={r.get('dim', 16)} lr={r['lr']} {r['optimizer']}{extra}: {r['median_steps']} steps"


if __name__ == "__main__":
    sys.exit(main())
