"""Wall time of a small training run without a logger, with TensorBoard and with W&B offline (same process).

Run: python docs/results/2026-11-30/logging/logging_overhead.py [--steps 300] [--reps 3]
A synthetic store (20 episodes x 50 steps, state 7-D, action 2-D), the default MLP flow policy at batch 64,
one metrics row per step (--log-every 1: the most logging a run can do), checkpoints every 100 steps.
Prints one JSON line per (logger, repetition) and the median seconds per configuration; order is
interleaved so load changes hit every configuration alike.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ttfkit.data import ReplayBuffer
from ttfkit.policies.trainer import TrainConfig, train


def _store(path: Path) -> Path:
    rng = np.random.default_rng(0)
    buf = ReplayBuffer.create(path, attrs={"source": "logging_overhead.py"})
    for _ in range(20):
        pos = np.cumsum(rng.normal(scale=0.1, size=(50, 3)), axis=0).astype(np.float32)
        env = np.repeat(rng.uniform(-1, 1, size=(1, 4)), 50, axis=0).astype(np.float32)
        buf.add_episode({"agent_pos": pos, "environment_state": env,
                         "action": np.tanh(np.concatenate([pos, env], 1) @ rng.normal(size=(7, 2))).astype(np.float32)})
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="ttfkit-logbench-"))
    store = _store(root / "store.zarr")
    times: dict[str, list[float]] = {}
    for rep in range(args.reps):
        for log in ((), ("tensorboard",), ("wandb",)):
            name = "+".join(log) or "none"
            config = TrainConfig(dataset=str(store), out=str(root / f"{name}_{rep}"), steps=args.steps, batch=64,
                                 ckpt_every=100, log_every=1, log=log)
            start = time.perf_counter()
            train(config)
            seconds = time.perf_counter() - start
            times.setdefault(name, []).append(seconds)
            print(json.dumps({"log": name, "rep": rep, "steps": args.steps, "seconds": round(seconds, 3)}), flush=True)
    base = statistics.median(times["none"])
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:12s} median {med:6.2f} s  ratio to none {med / base:5.3f}  (min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    main()
