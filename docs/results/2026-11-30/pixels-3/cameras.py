"""Draw fetch_cameras.png: the first frame (84x84) of Fetch pick-and-place and push from each camera the Fetch
env offers, on reset seed 0 (the first demo's layout).

Run from the repository root: ``MUJOCO_GL=egl python docs/results/2026-11-30/pixels-3/cameras.py``.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from ttfkit.envs.registry import make_env

CAMERAS = ["head_camera_rgb", "gripper_camera_rgb", "external_camera_0", None]


def main() -> None:
    tasks = ["pick-and-place", "push"]
    fig, axes = plt.subplots(len(tasks), len(CAMERAS), figsize=(2.4 * len(CAMERAS), 2.6 * len(tasks)))
    for row, task in zip(axes, tasks):
        for ax, cam in zip(row, CAMERAS):
            env = make_env(f"ttfkit/fetch-{task}-v4", pixels=True, image_size=84, camera=cam)
            obs, _ = env.reset(seed=0)
            ax.imshow(obs["pixels"])
            ax.set_title(f"{task}\n{cam or 'free camera (default)'}", fontsize=8)
            ax.axis("off")
            env.close()
    fig.tight_layout()
    fig.savefig(Path(__file__).with_name("fetch_cameras.png"), dpi=100)


if __name__ == "__main__":
    main()
