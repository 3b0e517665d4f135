"""Scripted-expert success over 50 seeds per registered task (quality benchmark, not a unit test).

    MUJOCO_GL=egl python -m ttfkit.scripts.bench_experts [--episodes 50] [--workers 2] [--seed 100000]
        [--only metaworld|fetch] [--jsonl out.jsonl]

Every task is evaluated through ``ttfkit.envs.evaluate`` (seeds seed .. seed+episodes-1, success =
``is_success`` at any step within the suite's time limit). Tasks run in parallel worker processes,
one in-process env per task. Registered tasks without a scripted expert (robomimic tool-hang and
transport) are skipped with a note. Prints one JSON line per task, then a table with Wilson 95%
intervals and the tasks below the 95% target.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time

TARGET = 0.95


def _run(job: tuple[str, int, int]) -> dict:
    import torch

    torch.set_num_threads(1)
    import ttfkit.envs as envs

    env_id, episodes, seed = job
    start = time.perf_counter()
    result = envs.evaluate(envs.make_expert(env_id), env_id, episodes, seed=seed, n_envs=1)
    return {"env_id": env_id, "episodes": episodes, "seed": seed, "successes": result.n_successes,
            "success_rate": result.success_rate, "ci_low": result.ci_low, "ci_high": result.ci_high,
            "mean_length": result.mean_length, "failed_seeds": [s for s, ok in zip(result.seeds, result.successes)
                                                                if not ok],
            "seconds": round(time.perf_counter() - start, 1)}


def expert_tasks(only: str | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """(registered ids that have a scripted expert, [(id, why) for those that have none])."""
    import ttfkit.envs as envs

    tasks, skipped = [], []
    for env_id in envs.list_envs(only):
        try:
            envs.make_expert(env_id)
        except KeyError as err:
            skipped.append((env_id, err.args[0]))
        else:
            tasks.append(env_id)
    return tasks, skipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=("metaworld", "fetch"), default=None)
    parser.add_argument("--jsonl", default=None, help="also write the JSON lines here")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    import ttfkit.envs as envs

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))).stdout.strip()
    print(f"# bench_experts: {args.episodes} episodes/task from seed {args.seed}, {args.workers} workers, "
          f"cpu_count={os.cpu_count()}, git {commit or '?'}", flush=True)
    tasks, skipped = expert_tasks(args.only)
    for env_id, why in skipped:
        print(f"# skipped {env_id}: {why}", flush=True)
    jobs = [(env_id, args.episodes, args.seed) for env_id in tasks]
    rows = []
    sink = open(args.jsonl, "w") if args.jsonl else None
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(args.workers) as pool:
        for row in pool.imap_unordered(_run, jobs):
            rows.append(row)
            line = json.dumps(row)
            print(line, flush=True)
            if sink:
                sink.write(line + "\n")
                sink.flush()
    if sink:
        sink.close()
    rows.sort(key=lambda r: r["env_id"])
    print(f"\n{'task':<42} {'success':>9} {'rate':>6} {'95% CI':>15} {'mean len':>9}")
    for r in rows:
        flag = "" if r["success_rate"] >= TARGET else "  < 95%"
        print(f"{r['env_id']:<42} {r['successes']:>4}/{r['episodes']:<4} {r['success_rate']:>6.0%} "
              f"{r['ci_low']:>7.0%}-{r['ci_high']:<6.0%} {r['mean_length']:>9.1f}{flag}")
    weak = [r for r in rows if r["success_rate"] < TARGET]
    total = sum(r["successes"] for r in rows), sum(r["episodes"] for r in rows)
    print(f"\n{len(rows) - len(weak)}/{len(rows)} tasks >= {TARGET:.0%}; overall {total[0]}/{total[1]}")
    for r in weak:
        print(f"  below target: {r['env_id']} {r['success_rate']:.0%} (failed seeds {r['failed_seeds'][:10]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
