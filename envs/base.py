"""Shared plumbing of ttfkit's MuJoCo task envs: the dict observation space, offscreen cameras,
``render`` and ``close``.

A suite's env builds its simulator (``self._env``, with ``.model``, ``.data`` and ``.close()``), then
calls ``_init_views``; it implements ``reset``, ``step`` and ``_obs``. Observations are
``{"agent_pos", "environment_state"[, "pixels"]}`` and actions are 4-D in [-1, 1] in every suite.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ttfkit.envs.rendering import OffscreenCamera, fast_visuals

__all__ = ["TaskEnv"]


class TaskEnv(gym.Env):
    """Base of ``MetaWorldEnv`` and ``FetchEnv``; ``suite`` names the suite in error messages."""

    suite = "task"

    def _init_views(self, *, agent_dim: int, env_dim: int, pixels: bool, image_size: int,
                    render_mode: str | None, render_size: int, camera: str | dict,
                    rotate180: bool = False) -> None:
        """Set the observation/action spaces and the cameras for ``pixels`` and ``render()``."""
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"{render_mode=} must be None or 'rgb_array'")
        if image_size <= 0 or render_size <= 0:
            raise ValueError(f"{image_size=} and {render_size=} must be positive")
        self.pixels = pixels
        self.render_mode = render_mode
        self._image_size = image_size
        self._render_size = render_size
        self._camera_spec = camera
        self._rotate180 = rotate180
        fast_visuals(self._env.model, max(image_size, render_size), max(image_size, render_size))
        self._cameras: dict[int, OffscreenCamera] = {}
        if pixels or render_mode is not None:  # fail early on a bad camera name
            self._camera(image_size if pixels else render_size)
        obs_spaces = {
            "agent_pos": spaces.Box(-np.inf, np.inf, (agent_dim,), np.float32),
            "environment_state": spaces.Box(-np.inf, np.inf, (env_dim,), np.float32),
        }
        if pixels:
            obs_spaces["pixels"] = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        return self._frame(self._render_size)

    def close(self) -> None:
        for cam in self._cameras.values():
            cam.close()
        self._cameras.clear()
        self._env.close()

    def _check_action(self, action) -> np.ndarray:
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (4,):
            raise ValueError(f"{self.suite} action must have shape (4,), got {action.shape}")
        return action

    def _camera(self, size: int) -> OffscreenCamera:
        if size not in self._cameras:
            self._cameras[size] = OffscreenCamera(self._env.model, self._env.data, size, size,
                                                  self._camera_spec, rotate180=self._rotate180)
        return self._cameras[size]

    def _frame(self, size: int) -> np.ndarray:
        return self._camera(size).render()
