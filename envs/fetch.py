"""gymnasium-robotics Fetch tasks as ttfkit envs: ``ttfkit/fetch-pick-and-place-v4`` and
``ttfkit/fetch-push-v4`` (wrapping ``FetchPickAndPlace-v4`` / ``FetchPush-v4``).

Observation (dict, float32 unless noted), from Fetch's 25-dim ``observation`` ``o`` and goal ``g``:

- ``agent_pos`` (10,) = gripper position ``o[0:3]``, finger positions ``o[9:11]``, gripper linear
  velocity ``o[20:23]``, finger velocities ``o[23:25]``.
- ``environment_state`` (15,) = object position ``o[3:6]``, rotation (euler) ``o[11:14]``, linear
  velocity ``o[14:17]``, angular velocity ``o[17:20]``, desired goal ``g`` (3).
- ``pixels`` (H, W, 3) uint8, only with ``pixels=True`` (default: Fetch's free camera view).

Fetch's ``object_rel_pos`` (``o[6:9]``) and ``achieved_goal`` are the object position relative to
the gripper and the object position, so nothing is lost. Episodes last 50 steps (gymnasium
``TimeLimit``); ``terminated`` is False unless ``terminate_on_success=True`` (ends an episode at its
first success, as LeRobot's rollout expects); ``info["is_success"]`` is True while the object is
within 5 cm of the goal. Layouts (object and goal) are drawn from ``reset(seed=...)``.
gymnasium-robotics gives no observation bounds (its spaces are unbounded), so neither does this.
``render_fps`` is 1 / the simulator's step (25).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ttfkit.envs.base import TaskEnv
from ttfkit.envs.registry import register_env

__all__ = ["FetchEnv", "TASKS", "AGENT_POS_DIM", "ENV_STATE_DIM"]

TASKS: dict[str, str] = {
    "pick-and-place": "gymnasium_robotics.envs.fetch.pick_and_place:MujocoFetchPickAndPlaceEnv",
    "push": "gymnasium_robotics.envs.fetch.push:MujocoFetchPushEnv",
}
MAX_EPISODE_STEPS = 50
AGENT_POS_DIM = 10
ENV_STATE_DIM = 15
# Free camera facing the robot across the table (closer than Fetch's default viewer pose).
FREE_CAMERA = {"distance": 0.9, "azimuth": 180.0, "elevation": -35.0, "lookat": (1.25, 0.75, 0.45)}
_AGENT = np.r_[0:3, 9:11, 20:23, 23:25]
_OBJECT = np.r_[3:6, 11:14, 14:17, 17:20]


class FetchEnv(TaskEnv):
    """A gymnasium-robotics Fetch task with a dict observation and seeded layouts.

    Args:
        task: ``"pick-and-place"`` or ``"push"``.
        pixels: add ``pixels`` (image_size x image_size x 3 uint8) to the observation.
        image_size: side of the ``pixels`` image.
        camera: a camera name of the Fetch model (``head_camera_rgb``, ...) or ``None`` for a free
            camera looking at the table (``FREE_CAMERA``).
        render_mode: ``None`` or ``"rgb_array"``; render_size: side of the ``render()`` frame.
        terminate_on_success: end the episode (``terminated=True``) at the first success.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}  # 1 / (timestep 0.002 x 20 substeps)
    suite = "Fetch"

    def __init__(self, task: str, pixels: bool = False, image_size: int = 96, camera: str | None = None,
                 render_mode: str | None = None, render_size: int = 256,
                 terminate_on_success: bool = False) -> None:
        if task not in TASKS:
            raise KeyError(f"unknown Fetch task {task!r}; known: {sorted(TASKS)}")
        try:
            module, cls = TASKS[task].split(":")
            env_cls = getattr(__import__(module, fromlist=[cls]), cls)
        except ImportError as err:  # pragma: no cover - core dependency
            raise ImportError("gymnasium-robotics is missing: pip install 'gymnasium-robotics==1.4.2'") from err
        self.task = task
        self._env = env_cls(reward_type="sparse")
        self._init_views(agent_dim=AGENT_POS_DIM, env_dim=ENV_STATE_DIM, pixels=pixels, image_size=image_size,
                         render_mode=render_mode, render_size=render_size,
                         camera=dict(FREE_CAMERA) if camera is None else camera)
        self.terminate_on_success = terminate_on_success

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._env.np_random = self.np_random  # one generator drives object and goal positions
        raw, _ = self._env.reset()
        self._initial_object_xy = raw["observation"][3:5].copy()
        return self._obs(raw), {"is_success": self._success(raw)}

    def step(self, action: np.ndarray):
        action = self._check_action(action)
        raw, reward, _, _, info = self._env.step(action)
        success = bool(info["is_success"])
        terminated = self.terminate_on_success and success
        return self._obs(raw), float(reward), terminated, False, {"is_success": success}

    def layout(self) -> np.ndarray:
        """The current episode's layout: initial object xy and goal xyz (5,)."""
        return np.concatenate([self._initial_object_xy, self._env.goal]).astype(np.float64)

    def _success(self, raw: dict[str, np.ndarray]) -> bool:
        return bool(self._env._is_success(raw["achieved_goal"], raw["desired_goal"]))

    def _frame(self, size: int) -> np.ndarray:
        self._env._render_callback()  # moves the goal marker site to the current goal
        return super()._frame(size)

    def _obs(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        o = raw["observation"]
        obs = {
            "agent_pos": o[_AGENT].astype(np.float32),
            "environment_state": np.concatenate([o[_OBJECT], raw["desired_goal"]]).astype(np.float32),
        }
        if self.pixels:
            obs["pixels"] = self._frame(self._image_size)
        return obs


for _task in TASKS:
    register_env(f"ttfkit/fetch-{_task}-v4", entry_point="ttfkit.envs.fetch:FetchEnv",
                 max_episode_steps=MAX_EPISODE_STEPS, kwargs={"task": _task})
