"""Benchmark DoPr: step-time overhead against its base optimizer, and what amortisation costs in quality.

Usage:
    python scripts/bench_optim.py                      # both nets + the regression toy
    python scripts/bench_optim.py --nets mlp --reps 5 --out bench_optim.jsonl
    python scripts/bench_optim.py --nets --toy-seeds 5 # toy only

Part 1 (time): one step = forward + backward + optimizer step of the default flow policy
(``ttfkit.policies.make_policy("flow", backbone="mlp" | "unet")``, its ``compute_loss``) at batch 256,
for AdamW, Muon and DoPr on each. DoPr's per-step cost splits into parts that different settings
pay at different rates, and each part is timed as a full step in the same process, round-robin with
the baseline (so load drift hits all alike):

    apply   DoPr with no recording and no refresh after step 0: base + G P per layer
    stats   DoPr recording every step, never refreshing:        + Z^T Z in the forward hooks
    full    DoPr (stat_every=1, inverse_every=1):                + Cholesky + inverse every step

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
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from ttfkit.optim import DoPr, make_optimizer

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
    from ttfkit.policies import make_policy

    torch.manual_seed(0)
    policy = make_policy("flow", obs_shapes={"agent_pos": (10,), "environment_state": (20,)}, action_dim=4,
                         backbone=backbone).to(device)
    gen = torch.Generator().manual_seed(1)
    batch = {"obs": {"agent_pos": torch.randn(batch_size, 2, 10, generator=gen),
                     "environment_state": torch.randn(batch_size, 2, 20, generator=gen)},
             "action": torch.randn(batch_size, 16, 4, generator=gen)}
    batch = {"obs": {k: v.to(device) for k, v in batch["obs"].items()}, "action": batch["action"].to(device)}
    return policy, batch


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


def bench_time(backbone: str, base: str, reps: int, batch_size: int, device: torch.device, lr: float) -> list[dict]:
    """Round-robin timing of the base optimizer and DoPr's three cost parts; derived amortised rows."""
    policy, batch = _policy_and_batch(backbone, batch_size, device)
    variants = {
        "base": lambda m: make_optimizer(base, m, lr=lr),
        "apply": lambda m: DoPr(m, base=base, lr=lr, stat_every=NEVER, inverse_every=NEVER),
        "stats": lambda m: DoPr(m, base=base, lr=lr, stat_every=1, inverse_every=NEVER),
        "full": lambda m: DoPr(m, base=base, lr=lr, stat_every=1, inverse_every=1),
    }
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
    for label in ("base", "apply", "stats", "full"):
        rows.append({"net": backbone, "params": n_params, "base": base, "variant": label, "measured": True,
                     "seconds": _summary(times[label]),
                     "ratio": _summary([t / b for t, b in zip(times[label], base_t)]),
                     "ratio_of_min": min(times[label]) / min(base_t)})
    for s, i in GRID:
        per_rep = [(a + (st - a) / s + (f - st) / i) / b
                   for a, st, f, b in zip(times["apply"], times["stats"], times["full"], base_t)]
        fastest = {label: min(values) for label, values in times.items()}
        of_min = (fastest["apply"] + (fastest["stats"] - fastest["apply"]) / s
                  + (fastest["full"] - fastest["stats"]) / i) / fastest["base"]
        rows.append({"net": backbone, "params": n_params, "base": base, "variant": f"dopr(s={s},i={i})",
                     "stat_every": s, "inverse_every": i, "measured": (s, i) == (1, 1), "ratio": _summary(per_rep),
                     "ratio_of_min": of_min})
    return rows


def flop_floor(backbone: str, batch_size: int, device: torch.device) -> dict:
    """Analytic lower bound on DoPr's per-step ratio: the AP product G P costs 2 d_out d^2 per covered
    layer (d = inputs + bias) every step, against ~6 n d_in d_out for that layer's forward + backward
    (n = rows: batch x positions). Counts covered layers only, so the true base step costs more."""
    policy, batch = _policy_and_batch(backbone, batch_size, device)
    opt = DoPr(policy, stat_every=1, inverse_every=NEVER)
    loss, _ = policy.compute_loss(batch)
    loss.backward()
    train = ap = 0.0
    for layer in opt.preconditioner.layers.values():
        rows = layer.acc[-1, -1].item()  # rows the forward hook saw
        d_out, d_in = layer.weight.shape[0], layer.weight[0].numel()
        d = d_in + (layer.bias is not None)
        train += 6 * rows * d_in * d_out
        ap += 2 * d_out * d * d
    return {"net": backbone, "batch": batch_size, "train_gflop": train / 1e9, "ap_gflop": ap / 1e9,
            "flop_floor": 1 + ap / train}


def regression_steps(name: str, seed: int, lr: float, target: float = 0.05, max_steps: int = 2000, **kw) -> int:
    """Steps until ||W - W*|| / ||W*|| < target; inputs x = A g with cov(x) eigenvalues 1 .. 1e-3."""
    gen = torch.Generator().manual_seed(seed)
    d = 16
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


def bench_toy(seeds: int, lrs: list[float]) -> list[dict]:
    rows = []
    for lr in lrs:
        adamw = statistics.median(regression_steps("adamw", s, lr) for s in range(seeds))
        rows.append({"toy": "correlated-regression", "lr": lr, "optimizer": "adamw", "median_steps": adamw})
        best = None
        for ema in (None, 0.9):
            for s, i in GRID:
                steps = statistics.median(
                    regression_steps("dopr-adamw", seed, lr, stat_every=s, inverse_every=i, ema=ema)
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
                                                        inverse_every=i) for seed in range(seeds))
            rows.append({"toy": "correlated-regression", "lr": lr, "optimizer": "dopr-adamw", "ema": None,
                         "damping": damping, "stat_every": s, "inverse_every": i, "median_steps": steps,
                         "advantage_kept": float("nan")})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", nargs="*", default=["mlp", "unet"], help="policy backbones to time")
    parser.add_argument("--bases", nargs="*", default=["adamw", "muon"])
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions (after one warm-up)")
    parser.add_argument("--unet-reps", type=int, default=None, help="repetitions for the unet (default --reps)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--toy-seeds", type=int, default=5)
    parser.add_argument("--toy-lrs", type=float, nargs="*", default=[1e-2])
    parser.add_argument("--toy-dampings", type=float, nargs="*", default=[],
                        help="also sweep DoPr's damping on the toy (at the first --toy-lrs)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    env = _env()
    print(json.dumps({"env": env, "args": {k: str(v) for k, v in vars(args).items()}}), flush=True)
    rows = []

    def emit(row):
        row = {**row, **env}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out is not None:
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")

    for net in args.nets:
        reps = args.unet_reps if (net == "unet" and args.unet_reps) else args.reps
        for base in args.bases:
            for row in bench_time(net, base, reps, args.batch_size, device, args.lr):
                emit(row)
        emit(flop_floor(net, args.batch_size, device))
    if args.toy_seeds:
        for row in bench_toy(args.toy_seeds, args.toy_lrs):
            emit(row)
        for row in bench_toy_damping(args.toy_seeds, args.toy_lrs[0], args.toy_dampings):
            emit(row)

    print(f"\n# {env['device']}, torch {env['torch']}, commit {env['commit']}, threads {env['threads']}")
    for r in rows:
        if "flop_floor" in r:
            print(f"{r['net']:5s} FLOP floor of DoPr at batch {r['batch']}: x{r['flop_floor']:.2f} "
                  f"(G P {r['ap_gflop']:.2f} GFLOP vs {r['train_gflop']:.2f} GFLOP forward+backward of covered layers)")
        elif "net" in r:
            ratio = r["ratio"]
            secs = f"{r['seconds']['median']:.3f}s " if "seconds" in r else " " * 8
            kind = "measured" if r["measured"] else "derived"
            print(f"{r['net']:5s} {r['base']:6s} {r['variant']:18s} {secs} x{ratio['median']:.2f} "
                  f"[{ratio['min']:.2f}, {ratio['max']:.2f}]  min/min x{r['ratio_of_min']:.2f}  {kind}")
        else:
            extra = "" if r["optimizer"] == "adamw" else (f" ema={r['ema']} s={r['stat_every']} i={r['inverse_every']}"
                                                          f" damping={r.get('damping', 'default')}"
                                                          f" kept={r['advantage_kept']:.2f}")
            print(f"toy lr={r['lr']} {r['optimizer']}{extra}: {r['median_steps']} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
