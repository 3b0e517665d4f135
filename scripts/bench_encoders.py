"""Benchmark: pixel-policy cost per image encoder: training samples/s and batch-1 chunk latency.

Policy: flow + MLP backbone (ttfkit defaults), obs ``agent_pos`` (4,) + one 84x84 camera, To=2,
H=16, random crop 0.9 (84 -> 76) at training and centre crop at inference. Encoders: the small conv
net at 32 and 16 channels, and Diffusion Policy's GroupNorm ResNet-18 (width 64) and a half-width one
(32). Per encoder, in this process on the same synthetic batch: the median time of a training step
(forward + backward + AdamW) at ``--batch`` after one warm-up step, and the median latency of
``predict_action_chunk`` for one observation (``num_steps`` flow steps, eval mode). Each is also
given in CPU seconds of this process (``time.process_time``), which a shared machine's other load
disturbs much less than wall time.

Usage: ``python -m ttfkit.scripts.bench_encoders [--batch 32] [--steps 3] [--threads 1] [--encoders conv32 ...]``
Prints a header (torch version, git commit, CPUs, threads) and one JSON line per encoder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ENCODERS = {
    "conv32": {"image_encoder": "conv", "image_channels": 32},
    "conv16": {"image_encoder": "conv", "image_channels": 16},
    "resnet18": {"image_encoder": "resnet18", "resnet_width": 64},
    "resnet18-w32": {"image_encoder": "resnet18", "resnet_width": 32},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="training batch")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (after one warm-up)")
    parser.add_argument("--latency-repeats", type=int, default=5, help="timed batch-1 chunk predictions")
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=list(ENCODERS))
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    _print_header()
    for name in args.encoders:
        print(json.dumps({"encoder": name, **measure(ENCODERS[name], args.batch, args.steps,
                                                      args.latency_repeats)}), flush=True)
    return 0


def measure(encoder: dict, batch: int, steps: int, latency_repeats: int) -> dict:
    from ttfkit.policies import make_policy

    torch.manual_seed(0)
    policy = make_policy("flow", obs_shapes={"agent_pos": (4,), "pixels": (3, 84, 84)}, action_dim=4, horizon=16,
                         n_obs_steps=2, n_action_steps=8, backbone="mlp", encoder={**encoder, "crop_ratio": 0.9})
    enc_params = sum(p.numel() for p in policy.encoder.images.parameters())
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    data = {"obs": {"agent_pos": torch.randn(batch, 2, 4, generator=gen),
                    "pixels": torch.rand(batch, 2, 3, 84, 84, generator=gen)},
            "action": torch.rand(batch, 16, 4, generator=gen) * 2 - 1}
    policy.train()
    times, cpu = [], []
    for i in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        loss, _ = policy.compute_loss(data)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    step_s = statistics.median(times)
    policy.eval()
    one = {k: v[:1] for k, v in data["obs"].items()}
    lat, lat_cpu = [], []
    for i in range(latency_repeats + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        policy.predict_action_chunk(one, generator=torch.Generator().manual_seed(i))
        if i:
            lat.append(time.perf_counter() - t0)
            lat_cpu.append(time.process_time() - c0)
    return {"encoder_params": enc_params, "policy_params": policy.num_params, "batch": batch,
            "train_step_s_median": round(step_s, 3), "train_step_s_min": round(min(times), 3),
            "train_samples_per_s": round(batch / step_s, 1), "timed_steps": steps,
            "train_step_cpu_s_median": round(statistics.median(cpu), 3),
            "train_samples_per_cpu_s": round(batch / statistics.median(cpu), 1),
            "chunk_latency_ms_median": round(1e3 * statistics.median(lat), 1),
            "chunk_latency_ms_min": round(1e3 * min(lat), 1), "latency_repeats": latency_repeats,
            "chunk_latency_cpu_ms_median": round(1e3 * statistics.median(lat_cpu), 1),
            "num_flow_steps": policy.config.num_steps}


def _print_header() -> None:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent).stdout.strip()
    except OSError:
        commit = "unknown"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# bench_encoders: device cpu, torch {torch.__version__}, git {commit or 'unknown'}, cpus "
          f"{os.cpu_count()}, torch threads {torch.get_num_threads()}, load avg {load:.1f}, "
          f"python {sys.version.split()[0]}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
