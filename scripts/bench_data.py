"""Benchmark: SequenceDataset + DataLoader throughput (samples/s) at batch 256, horizon 16.

Datasets (synthetic, fixed seed, written with ReplayBuffer into a temporary folder):
- ``state``: 100 episodes x 200 steps, ``environment_state`` 39-dim float32, ``action`` 4-dim;
- ``image``: 50 episodes x 200 steps, ``pixels`` 84x84x3 uint8 + ``agent_pos`` 4-dim, ``action``.

Configurations: each dataset with DataLoader ``num_workers`` 0 and 2 (shuffle, seeded generator,
persistent workers), plus a baseline in the same process: the same windows read from zarr per item
without the in-memory cache (``num_workers`` 0, fewer batches). Each repeat times ``--batches``
batches after ``--warmup`` batches; the median and min/max over ``--repeats`` are reported.

Usage: ``python -m ttfkit.scripts.bench_data [--repeats 5] [--batches 20] [--threads 1] [--quick]``

With ``num_workers=0`` the batch is collated (``torch.stack``) in the main process with torch's
intra-op threads; on a loaded machine more than one thread there can be far slower than one.
Prints a header (device, torch version, git commit, CPU count) and one JSON line per config.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ttfkit.data import ReplayBuffer, SequenceDataset

BATCH = 256
HORIZON = 16
N_OBS = 2
N_ACT = 8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per repeat")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches per repeat")
    parser.add_argument("--baseline-batches", type=int, default=2,
                        help="timed batches per repeat of the uncached zarr baseline")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--quick", action="store_true", help="small datasets, 2 repeats (smoke)")
    parser.add_argument("--root", type=Path, default=None, help="where to write the datasets")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads of the main process (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.repeats, args.batches, args.baseline_batches, args.warmup = 2, 3, 1, 1

    _print_header()
    with tempfile.TemporaryDirectory(dir=args.root) as tmp:
        specs = _dataset_specs(args.quick)
        for name, spec in specs.items():
            t0 = time.perf_counter()
            path = _make_dataset(Path(tmp) / f"{name}.zarr", **spec["shape"])
            build_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            ds = SequenceDataset(path, horizon=HORIZON, n_obs_steps=N_OBS, n_action_steps=N_ACT,
                                 obs_keys=spec["obs_keys"], split="all")
            load_s = time.perf_counter() - t0
            cache_mb = sum(a.nbytes for a in ds._arrays.values()) / 2**20
            common = {"dataset": name, **spec["shape"], "windows": len(ds), "batch": BATCH,
                      "horizon": HORIZON, "build_s": round(build_s, 2),
                      "cache_load_s": round(load_s, 2), "cache_mb": round(cache_mb, 1)}
            base = _time_loader(_UncachedWindows(ds, ReplayBuffer.open(path)), 0, args.repeats,
                                args.baseline_batches, 1)
            print(json.dumps({**common, "config": "baseline_zarr_per_item", "num_workers": 0,
                              **base}), flush=True)
            for workers in args.workers:
                res = _time_loader(ds, workers, args.repeats, args.batches, args.warmup)
                speedup = res["samples_per_s_median"] / base["samples_per_s_median"]
                print(json.dumps({**common, "config": "sequence_dataset", "num_workers": workers,
                                  **res, "speedup_vs_baseline": round(speedup, 1)}), flush=True)
    return 0


def _dataset_specs(quick: bool) -> dict[str, dict]:
    scale = 5 if quick else 1
    return {
        "state": {"shape": {"episodes": 100 // scale, "steps": 200, "obs_dim": 39, "image": 0},
                  "obs_keys": ("environment_state",)},
        "image": {"shape": {"episodes": 50 // scale, "steps": 200, "obs_dim": 4, "image": 84},
                  "obs_keys": ("pixels", "agent_pos")},
    }


def _make_dataset(path: Path, episodes: int, steps: int, obs_dim: int, image: int) -> Path:
    rng = np.random.default_rng(0)
    key = "agent_pos" if image else "environment_state"
    with ReplayBuffer.build(path, attrs={"synthetic": True}) as buf:
        for _ in range(episodes):
            ep = {key: rng.normal(size=(steps, obs_dim)).astype(np.float32),
                  "action": rng.uniform(-1, 1, size=(steps, 4)).astype(np.float32)}
            if image:
                ep["pixels"] = rng.integers(0, 256, size=(steps, image, image, 3), dtype=np.uint8)
            buf.add_episode(ep)
    return path


class _UncachedWindows(Dataset):
    """Baseline: the same windows as ``ds``, each read from zarr per item (no in-memory cache).
    Valid for ``split="all"``, where cached rows equal buffer rows."""

    def __init__(self, ds: SequenceDataset, buffer: ReplayBuffer) -> None:
        self.ds, self.arrays = ds, {k: buffer[k] for k in (*ds.obs_keys, ds.action_key)}

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, idx: int) -> dict:
        rows = self.ds.window_indices(idx)
        lo, hi = int(rows.min()), int(rows.max()) + 1
        take = {k: a[lo:hi][rows - lo] for k, a in self.arrays.items()}
        obs = {}
        for k in self.ds.obs_keys:
            x = torch.from_numpy(take[k][: self.ds.n_obs_steps])
            obs[k] = x.permute(0, 3, 1, 2).float() / 255 if k in self.ds.image_keys else x.float()
        return {"obs": obs, "action": torch.from_numpy(take[self.ds.action_key]).float()}


def _time_loader(ds: Dataset, workers: int, repeats: int, batches: int, warmup: int) -> dict:
    loader = DataLoader(ds, batch_size=BATCH, shuffle=True, drop_last=True,
                        num_workers=workers, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(0))
    rates = []
    for _ in range(repeats):
        it = iter(loader)
        for _ in range(warmup):
            next(it)
        t0 = time.perf_counter()
        for _ in range(batches):
            batch = next(it)
        dt = time.perf_counter() - t0
        assert batch["action"].shape == (BATCH, HORIZON, 4)
        rates.append(batches * BATCH / dt)
        del it
    return {"samples_per_s_median": round(statistics.median(rates), 1),
            "samples_per_s_min": round(min(rates), 1), "samples_per_s_max": round(max(rates), 1),
            "repeats": repeats, "timed_batches": batches}


def _print_header() -> None:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    except OSError:
        commit = "unknown"
    print(f"# bench_data: device cpu (DataLoader sampling), torch {torch.__version__}, "
          f"git {commit or 'unknown'}, cpus {os.cpu_count()}, torch threads "
          f"{torch.get_num_threads()}, python {sys.version.split()[0]}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
