"""Benchmark: a small TTF-gap study in-process vs ``--executor ray`` on this machine, and the cost of
splitting a checkpoint's evaluation into shards.

    python -m ttfkit.scripts.bench_ray --out docs/results/2026-11-30/eval-scale [--cpus 2]

Study: reach-v3 from 4 demos, AdamW and DoPr-AdamW, 1 seed, 200 MLP steps with checkpoints every 100,
20 evaluation episodes of at most 100 steps per checkpoint (4 checkpoints), ``--threads 1``. The two
executors run the same study into separate directories (demos shared); their checkpoints.csv must
be equal. Shard overhead: one checkpoint's 20 episodes evaluated as one in-process ``evaluate`` vs as
2 shards of 10 and 4 shards of 5 in Ray tasks (Ray started before the in-process study; ray.init's
time is reported, not counted in either study; wall time, so the
task start, the policy load per shard and the parallelism all count). Writes bench_ray.jsonl and
prints a table; record the machine load with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main"]

ENV = "ttfkit/metaworld-reach-v3"


def _cfg(out: Path, dataset: str):
    from ttfkit.scripts.gap import GapConfig

    return GapConfig(env=ENV, out=str(out), dataset=dataset, optims=("adamw", "dopr-adamw"), seeds=1, steps=200,
                     ckpt_every=100, batch=64, eval_episodes=20, eval_max_steps=100, n_envs=8, workers=0,
                     device="cpu")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--work", default="outputs/bench_ray")
    parser.add_argument("--cpus", type=int, default=2, help="num_cpus of the local Ray instance")
    args = parser.parse_args(argv)

    import ray
    import torch

    from ttfkit.envs import evaluate
    from ttfkit.envs.collect import collect
    from ttfkit.policies import load
    from ttfkit.scripts.executors import RayExecutor, evaluate_shard, merge_shards, shard_ranges
    from ttfkit.scripts.gap import run_gap
    from ttfkit.scripts.gap_report import read_csv

    torch.set_num_threads(1)
    work, out = Path(args.work), Path(args.out)
    shutil.rmtree(work / "local", ignore_errors=True)
    shutil.rmtree(work / "ray", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    demos = work / "reach.zarr"
    if not (demos / ".complete").exists():
        collect(ENV, 4, demos, seed=0)
        (demos / ".complete").write_text("")
    uptime = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: E731
    rows = []
    start = time.perf_counter()
    for attempt in range(3):  # Ray gives its raylet 30 s to register; a loaded machine can miss that
        try:
            ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
            break
        except Exception as err:  # noqa: BLE001
            print(f"ray.init attempt {attempt + 1} failed: {err}", flush=True)
            ray.shutdown()
    init_s = time.perf_counter() - start
    print(f"ray.init: {init_s:.1f} s", flush=True)
    start = time.perf_counter()
    run_gap(_cfg(work / "local", str(demos)))
    rows.append({"what": "study in-process", "wall_s": time.perf_counter() - start, "uptime": uptime()})
    print(rows[-1], flush=True)
    start = time.perf_counter()
    run_gap(_cfg(work / "ray", str(demos)), executor=RayExecutor(threads=1, shard_episodes=10))
    rows.append({"what": f"study ray (num_cpus={args.cpus})", "wall_s": time.perf_counter() - start,
                 "ray_init_s_not_counted": init_s, "uptime": uptime(),
                 "same_csv": read_csv(work / "local" / "checkpoints.csv") == read_csv(work / "ray" / "checkpoints.csv")})

    ckpt = sorted((work / "local" / "runs" / "adamw_lr0.001_seed0" / "checkpoints").glob("step_*"))[-1]
    start = time.perf_counter()
    evaluate(load(ckpt), ENV, 20, max_steps=100, n_envs=8, workers=0)
    rows.append({"what": "20 episodes, one evaluate", "wall_s": time.perf_counter() - start, "uptime": uptime()})
    task = ray.remote(evaluate_shard).options(num_cpus=1)
    for size in (10, 5):
        probe = work / f"shards{size}"
        shutil.rmtree(probe, ignore_errors=True)
        shutil.copytree(ckpt, probe)
        (probe / "eval.json").unlink(missing_ok=True)
        shutil.rmtree(probe / "eval_shards", ignore_errors=True)
        ranges = shard_ranges(0, 20, size)
        start = time.perf_counter()
        ray.get([task.remote(str(probe), ENV, a, b, 100, "cpu", 1) for a, b in ranges])
        merge_shards(probe, ranges)
        rows.append({"what": f"20 episodes, {len(ranges)} ray shards of {size}", "wall_s": time.perf_counter() - start,
                     "uptime": uptime()})
    ray.shutdown()
    base = rows[0]["wall_s"]
    with open(out / "bench_ray.jsonl", "a") as f:
        for row in rows:
            row["cores"] = len(os.sched_getaffinity(0))
            f.write(json.dumps(row) + "\n")
    for row in rows:
        extra = f"  ({base / row['wall_s']:.2f}x in-process study)" if row["what"].startswith("study") else ""
        print(f"{row['what']:<36} {row['wall_s']:8.1f} s{extra}   {row['uptime']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
