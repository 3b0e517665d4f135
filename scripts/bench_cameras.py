"""Benchmark: env steps/s and camera frames/s with 0, 1 and several cameras (``pixels_<camera>`` keys).

    MUJOCO_GL=egl python -m ttfkit.scripts.bench_cameras [--steps 300] [--size 84] [--repeats 3]

Per configuration: one env (``ttfkit.envs.rendering.CameraObservations`` for the cameras) stepped
with seeded uniform random actions after a warm-up reset, timed ``--repeats`` times over ``--steps``
steps; the median steps/s, frames/s (steps x cameras) and the same per CPU-second of this process
(less sensitive to other load on a shared machine) are printed as one JSON line. State-only stepping
in the same process is the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

CONFIGS = [
    ("ttfkit/metaworld-reach-v3", []),
    ("ttfkit/metaworld-reach-v3", ["corner"]),
    ("ttfkit/metaworld-reach-v3", ["corner", "corner2", "gripperPOV"]),
    ("ttfkit/fetch-pick-and-place-v4", []),
    ("ttfkit/fetch-pick-and-place-v4", ["head_camera_rgb"]),
    ("ttfkit/fetch-pick-and-place-v4", ["head_camera_rgb", "gripper_camera_rgb"]),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", type=int, default=84, help="frame side")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    import ttfkit.envs as envs
    from ttfkit.envs.rendering import CameraObservations

    print(f"# bench_cameras: MUJOCO_GL={os.environ.get('MUJOCO_GL')}, cpus {os.cpu_count()}, "
          f"load avg {os.getloadavg()[0]:.1f}, frame {args.size}x{args.size}", flush=True)
    for env_id, cameras in CONFIGS:
        env = envs.make_env(env_id)
        if cameras:
            env = CameraObservations(env, cameras, args.size)
        rng = np.random.default_rng(0)
        env.reset(seed=0)
        wall, cpu = [], []
        for r in range(args.repeats):
            env.reset(seed=r)
            actions = rng.uniform(-1, 1, size=(args.steps, 4)).astype(np.float32)
            t0, c0 = time.perf_counter(), time.process_time()
            for a in actions:
                env.step(a)
            wall.append(args.steps / (time.perf_counter() - t0))
            cpu.append(args.steps / max(time.process_time() - c0, 1e-9))
        env.close()
        steps, steps_cpu = statistics.median(wall), statistics.median(cpu)
        print(json.dumps({"env": env_id, "cameras": cameras, "size": args.size,
                          "steps_per_s": round(steps, 1), "frames_per_s": round(steps * len(cameras), 1),
                          "steps_per_cpu_s": round(steps_cpu, 1),
                          "frames_per_cpu_s": round(steps_cpu * len(cameras), 1),
                          "repeats": args.repeats, "steps": args.steps}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
