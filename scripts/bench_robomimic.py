"""robomimic env throughput: state-only steps/s per task, camera rendering (ttfkit's fast cameras vs
robosuite's own offscreen renderer at its defaults), and the evaluator's steps/s per worker count.

    MUJOCO_GL=egl nice -n 10 python -m ttfkit.scripts.bench_robomimic [--steps 150] [--repeats 3] \\
        [--tasks lift,can,square,tool-hang,transport] [--workers 0,1,2] [--eval-tasks lift] [--n-envs 2] \\
        [--out bench.jsonl]

- ``state``: one env in this process, seeded uniform random actions, ``env.step`` loop.
- ``camera``: steps/s with one 84x84 ``agentview`` image in the observation: ttfkit's env
  (``cameras=["agentview"]``, shadows/multisampling off) vs ``robosuite.make(..., use_camera_obs=True)``
  at robosuite's defaults (same controller); and raw frames/s of both renderers (render calls only).
- ``evaluate``: ``ttfkit.envs.evaluate`` of a random policy, 2 x ``--n-envs`` episodes x ``--steps`` steps
  without early stop on ``--n-envs`` env slots, for each ``--eval-tasks`` and ``--workers``; env steps/s
  over the whole call and without startup (before 2026-11-30's third pass this line reported policy
  calls/s, i.e. env steps / n_envs).
An empty list (``--tasks ""``) skips that part.
Each configuration is warmed up, then timed ``--repeats`` times (median, min, max; one JSON line each).
The cores may be shared: the header prints the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

__all__ = ["main"]


def _stats(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1), "repeats": len(values)}


def _time_steps(step, n_actions: int, steps: int, repeats: int) -> list[float]:
    rng = np.random.default_rng(0)
    for _ in range(10):
        step(rng.uniform(-1, 1, n_actions))
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step(rng.uniform(-1, 1, n_actions))
        out.append(steps / (time.perf_counter() - start))
    return out


def _time_calls(call, n: int, repeats: int) -> list[float]:
    for _ in range(5):
        call()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            call()
        out.append(n / (time.perf_counter() - start))
    return out


class _RandomPolicy:
    def __init__(self, action_dim: int):
        self.action_dim = action_dim
        self.rng = np.random.default_rng(0)

    def reset(self) -> None:
        pass

    def select_action(self, obs):
        return self.rng.uniform(-1, 1, (len(obs["agent_pos"]), self.action_dim)).astype(np.float32)


def _robosuite_default(task: str, camera: bool):
    """robosuite.make at its own render defaults, with ttfkit's controller (what robomimic's own env does)."""
    import robosuite

    from ttfkit.envs.robomimic import TASKS, default_controller

    spec = TASKS[task]
    arm = default_controller() | {"gripper": {"type": "GRIP"}}
    kwargs = dict(robots=["Panda"] * spec.n_arms, **dict(spec.extra))
    return robosuite.make(spec.env_name, controller_configs={"type": "BASIC", "body_parts": {"right": arm}},
                          has_renderer=False, has_offscreen_renderer=camera, use_camera_obs=camera,
                          camera_names="agentview", camera_heights=84, camera_widths=84, ignore_done=True,
                          **kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", default="lift,can,square,tool-hang,transport")
    parser.add_argument("--camera-tasks", default="lift")
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--eval-tasks", default="lift")
    parser.add_argument("--n-envs", type=int, default=2, help="env slots of the evaluate bench")
    parser.add_argument("--out", default=None, help="append the JSON lines to this file")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    import ttfkit.envs as envs
    from ttfkit.envs.evaluate import evaluate

    lines = []

    def emit(record: dict) -> None:
        lines.append(record)
        print(json.dumps(record), flush=True)

    print(f"# load average {os.getloadavg()}, cpus {os.cpu_count()}, steps {args.steps}, repeats {args.repeats}")
    def names(text: str) -> list[str]:
        return [name for name in text.split(",") if name]

    for task in names(args.tasks):
        env = envs.make_env(f"ttfkit/robomimic-{task}-v0", seed=0)
        emit({"bench": "state", "task": task, "steps_per_s": _stats(
            _time_steps(env.step, env.action_space.shape[0], args.steps, args.repeats))})
        env.close()
    for task in names(args.camera_tasks):
        env = envs.make_env(f"ttfkit/robomimic-{task}-v0", seed=0, cameras=["agentview"], image_size=84)
        ours = _time_steps(env.step, env.action_space.shape[0], args.steps, args.repeats)
        view = env.unwrapped._view("agentview", 84)
        ours_fps = _time_calls(view.render, args.steps, args.repeats)
        env.close()
        rs = _robosuite_default(task, camera=True)
        rs.reset()
        theirs = _time_steps(rs.step, rs.action_dim, args.steps, args.repeats)
        theirs_fps = _time_calls(lambda: rs.sim.render(camera_name="agentview", width=84, height=84),
                                 args.steps, args.repeats)
        rs.close()
        emit({"bench": "camera", "task": task, "image": "agentview 84x84",
              "ttfkit_steps_per_s": _stats(ours), "robosuite_default_steps_per_s": _stats(theirs),
              "ttfkit_frames_per_s": _stats(ours_fps), "robosuite_default_frames_per_s": _stats(theirs_fps),
              "frames_ratio": round(statistics.median(ours_fps) / statistics.median(theirs_fps), 2)})
    for task in names(args.eval_tasks):
        env_id = f"ttfkit/robomimic-{task}-v0"
        probe = envs.make_env(env_id, seed=0)
        action_dim = probe.action_space.shape[0]
        probe.close()
        for workers in (int(w) for w in names(args.workers)):
            rates, sim_rates = [], []
            for _ in range(args.repeats):
                timings: dict = {}
                result = evaluate(_RandomPolicy(action_dim), env_id, 2 * args.n_envs, n_envs=args.n_envs,
                                  workers=workers, max_steps=args.steps, stop_on_success=False, timings=timings)
                env_steps = sum(result.lengths)  # timings["steps"] counts policy calls (one per n_envs env steps)
                rates.append(env_steps / timings["total_s"])
                sim_rates.append(env_steps / (timings["total_s"] - timings["startup_s"]))
            emit({"bench": "evaluate", "task": task, "workers": workers, "n_envs": args.n_envs,
                  "episodes": 2 * args.n_envs, "unit": "env steps",
                  "steps_per_s_total": _stats(rates), "steps_per_s_after_startup": _stats(sim_rates)})
    if args.out:
        with open(args.out, "a") as f:
            for record in lines:
                f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
