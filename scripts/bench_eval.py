"""Benchmark: wall time of ``ttfkit.envs.evaluate`` for a trained MLP flow policy, in-process vs workers.

    python -m ttfkit.scripts.bench_eval --out docs/results/2026-11-30/eval-scale [--episodes 20]

Fixture (built once under ``--work``, reused): scripted demos of each task and a small MLP flow policy
(10 flow steps, H=16, 8 executed actions) trained on them for ``--train-steps`` steps. The policy is
weak; what matters here is the cost of its calls, and episodes that run to the time limit.

For each task (Meta-World pick-place, Fetch push) the same episodes (seeds 100000 ..) are evaluated
with: ``in-process`` (n_envs=1, workers=0: the baseline), ``in-process x 8`` (n_envs=8, workers=0),
and ``w2 x e`` (2 worker processes with e envs each, e = 1, 2, 4), in ``--rounds`` rounds (the order
rotated each round); a layout's speedup is baseline wall / its wall within the same round (load
drift between rounds cancels), summarised by the median and range over rounds. Every configuration
must give the baseline's per-episode results (checked). Reported per configuration:
wall time, env steps/s, the share of time in the policy (select_action), waiting for the envs
(sim + transfer), the env time per process (sim) and the ``transfer`` estimate = env wait minus
the busiest process's env time. The physical limit is cores x the raw env step rate
(``mj_step`` x substeps per env step; and the full env.step with its Python, which is the real bound).

Writes bench_eval.jsonl (one line per configuration), bench_eval.png and prints a table. Record
``uptime`` with the figures: on a shared machine the load changes the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main"]

TASKS = ("ttfkit/metaworld-pick-place-v3", "ttfkit/fetch-push-v4")
LAYOUTS = (("in-process", 1, 0), ("in-process x 8", 8, 0), ("w2 x 1", 2, 2), ("w2 x 2", 4, 2), ("w2 x 4", 8, 2))


def _fixture(env_id: str, work: Path, demos: int, steps: int) -> Path:
    """Demos + a trained MLP flow policy for ``env_id``; returns the checkpoint directory."""
    from ttfkit.envs.collect import collect
    from ttfkit.policies import TrainConfig, train

    task = env_id.split("/")[-1]
    store = work / f"{task}_demos.zarr"
    if not (store / ".complete").exists():
        collect(env_id, demos, store, seed=0)
        (store / ".complete").write_text("")
    run = work / f"{task}_mlp_flow"
    ckpts = sorted((run / "checkpoints").glob("step_*"))
    if not ckpts or int(ckpts[-1].name.split("_")[1]) < steps:
        train(TrainConfig(dataset=str(store), out=str(run), policy="flow", backbone="mlp", steps=steps, batch=128,
                          lr=1e-3, ckpt_every=steps, seed=0, policy_options={"num_steps": 10}),
              resume=bool(ckpts))
        ckpts = sorted((run / "checkpoints").glob("step_*"))
    return ckpts[-1]


def _raw_rates(env_id: str, n: int = 300) -> dict[str, float]:
    """Single-core rates: full env.step/s and mj_step/s (with the substeps per env step)."""
    import mujoco
    import numpy as np

    from ttfkit.envs import make_env

    env = make_env(env_id, seed=0)
    action = np.zeros(env.action_space.shape, np.float32)
    start = time.perf_counter()
    for _ in range(n):
        env.step(action)
    env_rate = n / (time.perf_counter() - start)
    inner = env.unwrapped._env
    model, data = inner.model, inner.data
    substeps = int(getattr(inner, "frame_skip", None) or getattr(inner, "n_substeps", 1))
    start = time.perf_counter()
    for _ in range(n * substeps):
        mujoco.mj_step(model, data)
    mj_rate = n * substeps / (time.perf_counter() - start)
    env.close()
    return {"env_steps_per_s_1core": env_rate, "mj_steps_per_s_1core": mj_rate, "substeps": substeps,
            "mj_env_steps_per_s_1core": mj_rate / substeps}


def _bench_task(env_id: str, ckpt: Path, episodes: int, max_steps: int | None, rounds: int) -> list[dict]:
    from ttfkit.envs import evaluate
    from ttfkit.policies import load

    rows, ref = [], None
    for r in range(rounds):
        rates = _raw_rates(env_id)
        order = LAYOUTS[r % len(LAYOUTS):] + LAYOUTS[:r % len(LAYOUTS)]
        mine = []
        for name, n_envs, workers in order:
            policy = load(ckpt)
            timings: dict = {}
            result = evaluate(policy, env_id, episodes, n_envs=n_envs, workers=workers, max_steps=max_steps,
                              timings=timings)
            outcome = (result.successes, result.lengths, result.returns)
            ref = ref or outcome
            env_steps = sum(result.lengths)
            busiest = max(timings["sim_s"]) if timings["sim_s"] else 0.0
            row = {"env": env_id, "round": r, "layout": name, "n_envs": n_envs, "workers": workers,
                   "envs_per_worker": n_envs // max(workers, 1), "episodes": episodes,
                   "success_rate": result.success_rate, "env_steps": env_steps,
                   "wall_s": timings["total_s"], "startup_s": timings["startup_s"],
                   "env_steps_per_s": env_steps / timings["total_s"], "policy_s": timings["policy_s"],
                   "env_wait_s": timings["env_wait_s"], "sim_s_per_process": timings["sim_s"],
                   "transfer_s": max(0.0, timings["env_wait_s"] - busiest) if workers else 0.0,
                   "policy_calls": timings["steps"], "same_results_as_baseline": outcome == ref,
                   "load_avg_1min": os.getloadavg()[0], **rates}
            mine.append(row)
            print(f"  round {r} {name:>15}: {row['wall_s']:7.1f} s ({row['env_steps_per_s']:6.0f} env steps/s; policy "
                  f"{row['policy_s']:.1f} s, env wait {row['env_wait_s']:.1f} s, startup {row['startup_s']:.1f} s; "
                  f"load {row['load_avg_1min']:.1f})", flush=True)
        base = next(x["wall_s"] for x in mine if x["layout"] == "in-process")
        for row in mine:
            row["speedup_vs_in_process"] = base / row["wall_s"]
        rows += mine
    return rows


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({r["env"] for r in rows}, key=[r["env"] for r in rows].index)
    fig, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 3.8), squeeze=False)
    for ax, env in zip(axes[0], envs):
        mine = [r for r in rows if r["env"] == env]
        names = [r["layout"] for r in mine]
        policy = [r["policy_s"] for r in mine]
        wait = [r["env_wait_s"] for r in mine]
        other = [r["wall_s"] - p - w for r, p, w in zip(mine, policy, wait)]
        x = range(len(mine))
        ax.bar(x, policy, label="policy")
        ax.bar(x, wait, bottom=policy, label="env wait (sim + transfer)")
        ax.bar(x, other, bottom=[p + w for p, w in zip(policy, wait)], label="startup + rest")
        for i, r in enumerate(mine):
            ax.text(i, r["wall_s"], f"{r['speedup_vs_in_process']:.2f}x", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(list(x), names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("wall time (s)")
        ax.set_title(f"{env.split('/')[-1]}: {mine[0]['episodes']} episodes (round 0, load "
                     f"{mine[0]['load_avg_1min']:.0f} on {mine[0]['cores']} cores)", fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="results directory (jsonl, png)")
    parser.add_argument("--work", default="outputs/bench_eval", help="fixture directory (demos, policies)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=None, help="episode limit (suite default)")
    parser.add_argument("--demos", type=int, default=10)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    header = {"torch": torch.__version__, "python": platform.python_version(), "cores": cores, "commit": commit,
              "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}
    print(json.dumps(header))
    rows = []
    for env_id in args.tasks.split(","):
        ckpt = _fixture(env_id, work, args.demos, args.train_steps)
        print(f"{env_id}: policy {ckpt}", flush=True)
        for row in _bench_task(env_id, ckpt, args.episodes, args.max_steps, args.rounds):
            row.update(limit_env_steps_per_s=cores * row["env_steps_per_s_1core"],
                       limit_mj_env_steps_per_s=cores * row["mj_env_steps_per_s_1core"], **header)
            rows.append(row)
    with open(out / "bench_eval.jsonl", "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    _plot([r for r in rows if r["round"] == 0], out / "bench_eval.png")
    print(f"\n{'env':<32} {'r':>2} {'layout':>15} {'wall s':>7} {'speedup':>8} {'steps/s':>8} {'limit':>6} "
          f"{'policy s':>9} {'wait s':>7} {'xfer s':>7} {'load':>5} {'same':>5}")
    for r in rows:
        print(f"{r['env']:<32} {r['round']:>2} {r['layout']:>15} {r['wall_s']:7.1f} {r['speedup_vs_in_process']:7.2f}x "
              f"{r['env_steps_per_s']:8.0f} {r['limit_env_steps_per_s']:6.0f} {r['policy_s']:9.1f} "
              f"{r['env_wait_s']:7.1f} {r['transfer_s']:7.2f} {r['load_avg_1min']:5.1f} "
              f"{str(r['same_results_as_baseline']):>5}")
    print("\nspeedup over rounds (median [min, max]):")
    for env in dict.fromkeys(r["env"] for r in rows):
        for name, *_ in LAYOUTS:
            vals = sorted(r["speedup_vs_in_process"] for r in rows if r["env"] == env and r["layout"] == name)
            print(f"  {env:<32} {name:>15}: {statistics.median(vals):.2f}x [{vals[0]:.2f}, {vals[-1]:.2f}]")
    print(f"uptime after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
