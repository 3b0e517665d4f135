"""Benchmark chunk policies: training throughput per backbone and inference latency per sampler.

Usage::

    python -m ttfkit.scripts.bench_policies [--repeats 7] [--threads 1] [--backbones mlp unet transformer]
        [--latency-backbones mlp unet] [--batch 256] [--device cpu] [--out bench.jsonl]

Training: samples/s of one full step (loss, backward, AdamW step) of the flow policy at each
backbone's default size, batch 256, state observations shaped like Meta-World (agent_pos 4,
environment_state 17, Da 4, H 16, To 2). Inference: latency of ``predict_action_chunk`` for flow
with 1/5/10 Euler steps, DDIM-10 and DDPM-100 at batch 1 and 16, with the ratio to DDIM-10 timed in
the same process. Configurations are timed round-robin, ``--repeats`` times each after a warm-up;
reported: median and min-max. One JSON line per configuration (stdout, or --out); a table at the end.
On a shared CPU the numbers are noisy; compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from ttfkit.policies import make_policy

OBS = {"agent_pos": (4,), "environment_state": (17,)}
ACTION_DIM, HORIZON = 4, 16


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent.parent,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _obs(batch: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(batch, 2, *s, generator=g).to(device) for k, s in OBS.items()}


def _policy(name: str, backbone: str, device: torch.device, **kw):
    torch.manual_seed(0)
    return make_policy(name, obs_shapes=OBS, action_dim=ACTION_DIM, horizon=HORIZON, backbone=backbone, **kw).to(device)


def _train_case(backbone: str, batch: int, device: torch.device):
    policy = _policy("flow", backbone, device).train()
    optim = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    data = {"obs": _obs(batch, device), "action": torch.randn(batch, HORIZON, ACTION_DIM).to(device)}
    gen = torch.Generator().manual_seed(1)

    def step():
        noise = {k: v.to(device) for k, v in policy.draw_loss_noise(batch, gen, "cpu").items()}
        loss, _ = policy.compute_loss(data, noise=noise)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    return policy.num_params, step


def _infer_case(kind: str, steps: int, backbone: str, batch: int, device: torch.device):
    if kind == "flow":
        policy = _policy("flow", backbone, device, num_steps=steps)
    else:
        policy = _policy("diffusion", backbone, device, sampler=kind, num_inference_steps=steps)
    policy.eval()
    obs = _obs(batch, device)
    gen = torch.Generator(device=device).manual_seed(2)
    return policy.num_params, lambda: policy.predict_action_chunk(obs, generator=gen)


def _time(fns: dict, repeats: int, inner: dict, device: torch.device) -> dict[str, list[float]]:
    """Round-robin timing: each repeat times every case once (``inner[name]`` calls per timing)."""
    for fn in fns.values():  # warm-up
        fn()
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            _sync(device)
            times[name].append((time.perf_counter() - t0) / inner[name])
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256, help="training batch")
    parser.add_argument("--backbones", nargs="+", default=["mlp", "unet", "transformer"])
    parser.add_argument("--latency-backbones", nargs="+", default=["mlp", "unet"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="JSON-lines file (default: stdout)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    header = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "commit": _git_commit(), "threads": torch.get_num_threads(),
              "python": platform.python_version()}
    lines = []
    out = open(args.out, "w") if args.out else sys.stdout

    def emit(record: dict) -> None:
        record = {**header, **record}
        lines.append(record)
        out.write(json.dumps(record) + "\n")
        out.flush()

    # training throughput
    cases, params = {}, {}
    for backbone in args.backbones:
        params[backbone], cases[backbone] = _train_case(backbone, args.batch, device)
    times = _time(cases, args.repeats, {k: 1 for k in cases}, device)
    for backbone, ts in times.items():
        med = statistics.median(ts)
        emit({"bench": "train", "policy": "flow", "backbone": backbone, "params": params[backbone],
              "batch": args.batch, "samples_per_s": args.batch / med, "step_s_median": med,
              "step_s_min": min(ts), "step_s_max": max(ts), "repeats": args.repeats})

    # inference latency per chunk
    samplers = [("flow", 1), ("flow", 5), ("flow", 10), ("ddim", 10), ("ddpm", 100)]
    for backbone in args.latency_backbones:
        for batch in (1, 16):
            cases, inner = {}, {}
            for kind, steps in samplers:
                name = f"{kind}-{steps}"
                _, cases[name] = _infer_case(kind, steps, backbone, batch, device)
                inner[name] = max(1, 20 // steps)
            times = _time(cases, args.repeats, inner, device)
            base = statistics.median(times["ddim-10"])
            for name, ts in times.items():
                med = statistics.median(ts)
                emit({"bench": "latency", "backbone": backbone, "batch": batch, "sampler": name,
                      "ms_median": 1e3 * med, "ms_min": 1e3 * min(ts), "ms_max": 1e3 * max(ts),
                      "ratio_vs_ddim10": med / base, "repeats": args.repeats})

    print(f"\n{header}", file=sys.stderr)
    for r in lines:
        if r["bench"] == "train":
            print(f"train  {r['backbone']:<12} {r['params'] / 1e6:5.2f}M params  batch {r['batch']}: "
                  f"{r['samples_per_s']:8.0f} samples/s (step {1e3 * r['step_s_median']:.1f} ms, "
                  f"{1e3 * r['step_s_min']:.1f}-{1e3 * r['step_s_max']:.1f})", file=sys.stderr)
        else:
            print(f"latency {r['backbone']:<11} B={r['batch']:<3} {r['sampler']:<8} {r['ms_median']:8.2f} ms "
                  f"({r['ms_min']:.2f}-{r['ms_max']:.2f})  x{r['ratio_vs_ddim10']:.2f} vs DDIM-10", file=sys.stderr)
    if args.out:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
