"""Benchmark: SequenceDataset + DataLoader throughput (samples/s) at batch 256, horizon 16.

Datasets (synthetic, fixed seed, written with ReplayBuffer into a temporary folder):
- ``state``: 100 episodes x 200 steps, ``environment_state`` 39-dim float32, ``action`` 4-dim;
- ``image``: 50 episodes x 200 steps, ``pixels`` 84x84x3 uint8 + ``agent_pos`` 4-dim, ``action``.

Configurations: each dataset with DataLoader ``num_workers`` 0 and 2 (shuffle, seeded generator,
persistent workers), plus a baseline in the same process: the same windows read from zarr per item
without the in-memory cache (``num_workers`` 0, fewer batches). Each repeat times ``--batches``
batches after ``--warmup`` batches; the median and min/max over ``--repeats`` are reported.

Streaming (``--stream``, issue 17): a pixel store larger than the cache (``--stream-episodes`` x 200
steps of 84x84x3 uint8 + ``agent_pos``, ~254 MB at 60 episodes) read with ``SequenceDataset(in_memory=False,
cache_mb=--cache-mb)`` at ``num_workers`` 0 and 2, with random-crop augmentation (84 -> 76, the
encoders' ``crop_images``) applied to each batch inside the loader; reported against the trainer's
samples/s for the pixel policy (flow + MLP + the default conv encoder with crop 0.9, To=2, timed
forward+backward+AdamW steps at ``--train-batch``, in this process) and with the peak resident memory
of the main process plus its workers (``VmHWM``, reset before the timed batches) next to the cache size.

Usage: ``python -m ttfkit.scripts.bench_data [--repeats 5] [--batches 20] [--threads 1] [--quick] [--stream]``

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
    parser.add_argument("--stream", action="store_true", help="only the streaming benchmark (see above)")
    parser.add_argument("--stream-episodes", type=int, default=60, help="episodes of the streamed store")
    parser.add_argument("--cache-mb", type=float, default=32.0, help="chunk cache of the streamed dataset")
    parser.add_argument("--train-batch", type=int, default=32, help="batch of the timed trainer steps")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.repeats, args.batches, args.baseline_batches, args.warmup = 2, 3, 1, 1

    _print_header()
    if args.stream:
        with tempfile.TemporaryDirectory(dir=args.root) as tmp:
            _stream_bench(args, Path(tmp))
        return 0
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


def _time_loader(ds: Dataset, workers: int, repeats: int, batches: int, warmup: int, collate=None,
                 measure_memory: bool = False) -> dict:
    loader = DataLoader(ds, batch_size=BATCH, shuffle=True, drop_last=True,
                        num_workers=workers, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(0), collate_fn=collate)
    rates, peaks = [], []
    for _ in range(repeats):
        it = iter(loader)
        for _ in range(warmup):
            next(it)
        pids = [os.getpid(), *_children()]
        if measure_memory:
            _reset_peak_rss(pids)
        t0 = time.perf_counter()
        for _ in range(batches):
            batch = next(it)
        dt = time.perf_counter() - t0
        assert batch["action"].shape == (BATCH, HORIZON, 4)
        rates.append(batches * BATCH / dt)
        if measure_memory:
            peaks.append(_rss_mb(pids))
        del it
    out = {"samples_per_s_median": round(statistics.median(rates), 1),
           "samples_per_s_min": round(min(rates), 1), "samples_per_s_max": round(max(rates), 1),
           "repeats": repeats, "timed_batches": batches}
    if measure_memory:
        out["peak_rss_mb_main_then_workers"] = [round(max(p[i] for p in peaks), 1) for i in range(len(peaks[0]))]
    return out


def _stream_bench(args: argparse.Namespace, tmp: Path) -> None:
    from ttfkit.policies.encoders import crop_images

    episodes = max(2, args.stream_episodes // (10 if args.quick else 1))
    t0 = time.perf_counter()
    path = _make_dataset(tmp / "stream.zarr", episodes=episodes, steps=200, obs_dim=4, image=84)
    store_mb = episodes * 200 * 84 * 84 * 3 / 2**20
    common = {"dataset": "stream", "episodes": episodes, "steps": 200, "image": 84, "store_mb": round(store_mb, 1),
              "cache_mb": args.cache_mb, "batch": BATCH, "build_s": round(time.perf_counter() - t0, 1),
              "augmentation": "random crop 84->76 in the loader"}
    trainer = _trainer_rate(args.train_batch, 2 if args.quick else 3)
    print(json.dumps({"config": "trainer_pixel_policy", **trainer}), flush=True)
    for workers in args.workers:
        ds = SequenceDataset(path, horizon=HORIZON, n_obs_steps=N_OBS, n_action_steps=N_ACT,
                             obs_keys=("pixels", "agent_pos"), split="all", in_memory=False, cache_mb=args.cache_mb)
        collate = _CropCollate(crop_images)
        common["main_rss_mb_before"] = round(_rss_mb([os.getpid()], "VmRSS")[0], 1)
        res = _time_loader(ds, workers, args.repeats, args.batches, args.warmup, collate=collate,
                           measure_memory=True)
        ratio = res["samples_per_s_median"] / trainer["samples_per_s"]
        print(json.dumps({**common, "config": "sequence_dataset_stream", "num_workers": workers, **res,
                          "vs_trainer": round(ratio, 1)}), flush=True)


class _CropCollate:
    """default_collate, then a random 76x76 crop of every (B, To, 3, 84, 84) image key, per image."""

    def __init__(self, crop) -> None:
        self.crop, self.generator = crop, None

    def __call__(self, items: list[dict]) -> dict:
        from torch.utils.data import default_collate

        if self.generator is None:  # one per process (workers get their own copy)
            self.generator = torch.Generator().manual_seed(os.getpid())
        batch = default_collate(items)
        for key, x in batch["obs"].items():
            if x.ndim == 5:
                flat = self.crop(x.flatten(0, 1), (76, 76), random=True, generator=self.generator)
                batch["obs"][key] = flat.unflatten(0, x.shape[:2])
        return batch


def _trainer_rate(batch: int, steps: int) -> dict:
    """Samples/s of forward+backward+AdamW steps of the pixel policy the trainer builds by default
    (``bench_encoders.measure`` with the default conv encoder)."""
    from ttfkit.scripts.bench_encoders import ENCODERS, measure

    res = measure(ENCODERS["conv32"], batch, steps, latency_repeats=1)
    return {"policy": "flow/mlp, conv encoder (32 ch, crop 0.9), To=2, 84x84", "batch": batch,
            "step_s_median": res["train_step_s_median"], "samples_per_s": res["train_samples_per_s"],
            "timed_steps": steps}


def _rss_mb(pids: list[int], field: str = "VmHWM") -> list[float]:
    """``field`` (VmHWM: peak resident, VmRSS: resident) of each of ``pids`` in MiB (0 if it ended)."""
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                out.append(int(next(line for line in f if line.startswith(field)).split()[1]) / 1024)
        except (OSError, StopIteration):
            out.append(0.0)
    return out


def _reset_peak_rss(pids: list[int]) -> None:
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def _children() -> list[int]:
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


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
