"""Environment throughput: steps/s single process vs the evaluator's vector env on 2 workers, and
offscreen rendering frames/s at 96x96 (shadows/multisampling off vs MuJoCo's defaults).

    MUJOCO_GL=egl python -m ttfkit.scripts.bench_envs [--steps 400] [--repeats 5] [--quick]

Per suite (Meta-World pick-place-v3, Fetch pick-and-place-v4), with seeded uniform random actions:
- ``single``: one env in this process, plain ``env.step`` loop (the baseline);
- ``vector-1`` / ``vector-2``: ``ttfkit.envs.evaluate.make_vector_env`` with 1 env (SyncVectorEnv)
  or 2 envs (AsyncVectorEnv, forkserver workers), stepping all envs in lockstep with one batched
  action per step, as ``evaluate`` does; steps/s counts env steps (n_envs per lockstep step).
- ``evaluate-1`` / ``evaluate-2``: wall time of a whole ``evaluate`` call (worker start included),
  4 episodes of 200 steps, no early stop.
Each configuration is warmed up, then timed ``--repeats`` times; the median and min/max are
printed as one JSON line, followed by the vector-2 / single ratio (goal >= 1.7 on 2 free cores).
Rendering: frames/s of ``pixels`` at 96x96 with ttfkit's fast visuals vs the MuJoCo defaults
(shadowsize 4096, offsamples 4). The machine may be shared: numbers are noisy; the header prints
the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

SUITES = {"metaworld": "ttfkit/metaworld-pick-place-v3", "fetch": "ttfkit/fetch-pick-and-place-v4"}


class RandomPolicy:
    """Uniform random actions from a seeded generator (evaluator policy interface)."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def select_action(self, obs):
        return self.rng.uniform(-1, 1, size=(len(obs["agent_pos"]), 4)).astype(np.float32)


def _stats(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1), "repeats": len(values)}


def _single(env_id: str, steps: int, repeats: int) -> list[float]:
    import ttfkit.envs as envs

    env = envs.make_env(env_id, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        env.step(rng.uniform(-1, 1, 4).astype(np.float32))
    out = []
    for r in range(repeats):
        env.reset(seed=r)
        start = time.perf_counter()
        for _ in range(steps):
            _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            if term or trunc:
                env.reset()
        out.append(steps / (time.perf_counter() - start))
    env.close()
    return out


def _vector(env_id: str, n_envs: int, steps: int, repeats: int) -> list[float]:
    from ttfkit.envs.evaluate import make_vector_env

    venv = make_vector_env(env_id, n_envs)
    policy = RandomPolicy()
    obs, _ = venv.reset(seed=list(range(n_envs)))
    for _ in range(20):
        obs, *_ = venv.step(policy.select_action(obs))
    out = []
    for r in range(repeats):
        obs, _ = venv.reset(seed=[r * n_envs + i for i in range(n_envs)])
        start = time.perf_counter()
        for _ in range(steps):
            obs, *_ = venv.step(policy.select_action(obs))
        out.append(n_envs * steps / (time.perf_counter() - start))
    venv.close()
    return out


def _evaluate(env_id: str, n_envs: int, repeats: int) -> list[float]:
    import ttfkit.envs as envs

    out = []
    for r in range(repeats):
        start = time.perf_counter()
        result = envs.evaluate(RandomPolicy(r), env_id, 4, seed=r * 10, n_envs=n_envs, max_steps=200,
                               stop_on_success=False)
        out.append(sum(result.lengths) / (time.perf_counter() - start))
    return out


def _render_fps(env_id: str, fast: bool, frames: int, repeats: int) -> list[float]:
    import ttfkit.envs as envs
    from ttfkit.envs.rendering import OffscreenCamera

    env = envs.make_env(env_id, seed=0)
    inner = env.unwrapped._env
    if not fast:  # MuJoCo's default visual quality
        inner.model.vis.quality.shadowsize = 4096
        inner.model.vis.quality.offsamples = 4
    camera = env.unwrapped._camera_spec
    cam = OffscreenCamera(inner.model, inner.data, 96, 96, camera)
    for _ in range(5):
        cam.render()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(frames):
            cam.render()
        out.append(frames / (time.perf_counter() - start))
    cam.close()
    env.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=100, help="timed frames per render repeat")
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats, args.frames = 100, 2, 30
    os.environ.setdefault("MUJOCO_GL", "egl")
    import mujoco
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))).stdout.strip()
    print(f"# bench_envs: cpu_count={os.cpu_count()} load={os.getloadavg()} mujoco={mujoco.__version__} "
          f"torch={torch.__version__} MUJOCO_GL={os.environ['MUJOCO_GL']} git={commit or '?'}", flush=True)
    for suite, env_id in SUITES.items():
        rows = {
            "single": _single(env_id, args.steps, args.repeats),
            "vector-1": _vector(env_id, 1, args.steps, args.repeats),
            "vector-2": _vector(env_id, 2, args.steps, args.repeats),
            "evaluate-1": _evaluate(env_id, 1, max(1, args.repeats // 2)),
            "evaluate-2": _evaluate(env_id, 2, max(1, args.repeats // 2)),
            "render96-fast": _render_fps(env_id, True, args.frames, args.repeats),
            "render96-default": _render_fps(env_id, False, max(5, args.frames // 5), args.repeats),
        }
        for name, values in rows.items():
            unit = "frames/s" if name.startswith("render") else "steps/s"
            print(json.dumps({"suite": suite, "env_id": env_id, "config": name, "unit": unit, **_stats(values)}),
                  flush=True)
        ratio = statistics.median(rows["vector-2"]) / statistics.median(rows["single"])
        ratio_eval = statistics.median(rows["evaluate-2"]) / statistics.median(rows["evaluate-1"])
        speedup = statistics.median(rows["render96-fast"]) / statistics.median(rows["render96-default"])
        print(json.dumps({"suite": suite, "vector2_over_single": round(ratio, 2),
                          "evaluate2_over_evaluate1": round(ratio_eval, 2),
                          "render_fast_over_default": round(speedup, 1), "goal": 1.7}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
