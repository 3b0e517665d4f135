"""Benchmark: ttfkit's flow policy versus LeRobot 0.4.4's diffusion policy, same process, same inputs.

Both policies read the same low-dim observations (``agent_pos`` 4 + ``environment_state`` 39, To=2)
and predict H=16 x Da=4 chunks with a 1-D conditional U-Net. LeRobot's ``down_dims`` are scaled
(base width b, dims (b, 2b, 4b)) to the closest parameter count to ttfkit's U-Net (printed). Inputs
are random tensors already in normalised units (normalisation and data loading are excluded on
both sides), fixed by ``--seed``.

Measured, median and [min, max] over ``--repeats`` repeats after warm-up:
- training throughput: samples/s of forward + backward + AdamW step at ``--batch``;
- action-chunk latency (batch 1, no grad): ttfkit flow with 1, 2 and 3 Euler steps (NFE) versus
  LeRobot diffusion with its default sampling (DDPM, 100 steps) and with DDIM 10 steps;
and the ratios ttfkit / LeRobot (goal: >= 1.5x training throughput, >= 8x chunk latency).

Usage: ``python -m ttfkit.scripts.bench_vs_lerobot [--batch 64] [--repeats 5] [--threads 1] [--quick]``
Needs ``make lerobot``. On the shared 2-core CPU machine the numbers are noisy: compare the ratios,
not the absolute values. Prints a header (device, torch/lerobot versions, git commit) and one JSON
line per measurement, then the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable

import torch

DO, DE, DA, H, TO, N_ACT = 4, 39, 4, 16, 2, 8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="training batch size")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    parser.add_argument("--train-steps", type=int, default=5, help="optimizer steps per repeat")
    parser.add_argument("--chunks", type=int, default=5, help="chunks per latency repeat")
    parser.add_argument("--down-dims", type=int, nargs="+", default=[64, 128, 256],
                        help="ttfkit U-Net down_dims (LeRobot's are matched to its parameter count)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2 repeats, 2 steps, 2 chunks (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.train_steps, args.chunks = 2, 2, 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    import lerobot

    ours = _ttfkit_policy(args.down_dims)
    theirs, base = _lerobot_policy_matched(_n_params(ours))
    print(f"# device cpu ({os.cpu_count()} cores, {args.threads} thread(s)), torch {torch.__version__}, "
          f"lerobot {lerobot.__version__}, commit {_git_commit()}")
    print(f"# params: ttfkit flow {_n_params(ours):,} (down_dims {args.down_dims}); lerobot diffusion "
          f"{_n_params(theirs):,} (down_dims {[base, 2 * base, 4 * base]}); batch {args.batch}")

    gen = torch.Generator().manual_seed(args.seed)
    obs = {"agent_pos": torch.randn(args.batch, TO, DO, generator=gen),
           "environment_state": torch.randn(args.batch, TO, DE, generator=gen)}
    action = torch.rand(args.batch, H, DA, generator=gen) * 2 - 1
    ours_batch = {"obs": obs, "action": action}
    theirs_batch = {"observation.state": obs["agent_pos"], "observation.environment_state":
                    obs["environment_state"], "action": action,
                    "action_is_pad": torch.zeros(args.batch, H, dtype=torch.bool)}

    results = {}
    results["train_ttfkit"] = _train_rate(ours, lambda: ours.compute_loss(ours_batch)[0], args)
    results["train_lerobot"] = _train_rate(theirs, lambda: theirs.forward(theirs_batch)[0], args)
    one = {k: v[:1] for k, v in obs.items()}
    one_theirs = {"observation.state": one["agent_pos"], "observation.environment_state": one["environment_state"]}
    ours.eval()
    theirs.eval()
    for nfe in (1, 2, 3):
        results[f"chunk_ttfkit_nfe{nfe}"] = _latency(
            lambda nfe=nfe: ours.sample(ours.encode_obs(one), torch.randn(1, H, DA), num_steps=nfe), args)
    results["chunk_lerobot_ddpm100"] = _latency(lambda: theirs.diffusion.generate_actions(one_theirs), args)
    ddim = _lerobot_policy(base, noise_scheduler_type="DDIM", num_inference_steps=10)
    ddim.load_state_dict(theirs.state_dict())
    ddim.eval()
    results["chunk_lerobot_ddim10"] = _latency(lambda: ddim.diffusion.generate_actions(one_theirs), args)

    for name, r in results.items():
        print(json.dumps({"name": name, **r}))
    train_ratio = results["train_ttfkit"]["median"] / results["train_lerobot"]["median"]
    print(f"training throughput ttfkit/lerobot: {train_ratio:.2f}x (goal >= 1.5x)")
    for nfe in (1, 2, 3):
        ours_ms = results[f"chunk_ttfkit_nfe{nfe}"]["median"]
        print(f"chunk latency lerobot DDPM-100 / ttfkit {nfe}-NFE: "
              f"{results['chunk_lerobot_ddpm100']['median'] / ours_ms:.1f}x (goal >= 8x); "
              f"lerobot DDIM-10 / ttfkit: {results['chunk_lerobot_ddim10']['median'] / ours_ms:.1f}x")
    return 0


def _ttfkit_policy(down_dims: list[int]):
    from ttfkit.policies import make_policy

    return make_policy("flow", normalizer=None, obs_shapes={"agent_pos": (DO,), "environment_state": (DE,)},
                       action_dim=DA, horizon=H, n_obs_steps=TO, n_action_steps=N_ACT, backbone="unet",
                       backbone_options={"down_dims": list(down_dims)}, num_steps=1)


def _lerobot_policy(base: int, **overrides):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

    config = DiffusionConfig(
        device="cpu", n_obs_steps=TO, horizon=H, n_action_steps=N_ACT,
        down_dims=(base, 2 * base, 4 * base),
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (DO,)),
                        "observation.environment_state": PolicyFeature(FeatureType.ENV, (DE,))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (DA,))}, **overrides)
    return DiffusionPolicy(config)


def _lerobot_policy_matched(target: int):
    """LeRobot diffusion with down_dims (b, 2b, 4b), b a multiple of 8 in [8, 256], whose parameter
    count is closest to ``target`` (bisection: the count grows with b)."""
    lo, hi = 1, 32  # b = 8 * k
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _n_params(_lerobot_policy(8 * mid)) < target else (lo, mid)
    best = min((lo, hi), key=lambda k: abs(_n_params(_lerobot_policy(8 * k)) - target))
    return _lerobot_policy(8 * best), 8 * best


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _train_rate(model: torch.nn.Module, loss_fn: Callable[[], torch.Tensor], args) -> dict:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()

    for _ in range(2):
        step()
    rates = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.train_steps):
            step()
        rates.append(args.batch * args.train_steps / (time.perf_counter() - t0))
    return {"unit": "samples/s", "median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def _latency(fn: Callable[[], torch.Tensor], args) -> dict:
    with torch.no_grad():
        fn()
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for _ in range(args.chunks):
                fn()
            times.append((time.perf_counter() - t0) / args.chunks * 1e3)
    return {"unit": "ms/chunk", "median": statistics.median(times), "min": min(times), "max": max(times)}


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
