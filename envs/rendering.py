"""Small offscreen MuJoCo camera used by every ttfkit env for ``pixels`` and ``render()``.

Software rendering (``MUJOCO_GL=egl`` or ``osmesa``) is slow with MuJoCo's default visual quality;
``fast_visuals`` turns shadows and multisampling off (``model.vis.quality.shadowsize = 0``,
``offsamples = 0``), which is ~10x faster at 96x96, and shrinks the offscreen buffer to what the
env needs. Frames are uint8 (H, W, 3), row 0 at the top.

``CameraObservations`` wraps a ttfkit env to add one ``pixels_<camera>`` key per named model camera
(multi-camera pixel observations; exported to LeRobot as ``observation.images.pixels_<camera>``).
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

__all__ = ["OffscreenCamera", "fast_visuals", "CameraObservations", "camera_key"]


def camera_key(camera: str) -> str:
    """Observation/store key of a named camera's frames: ``pixels_<camera>``."""
    return f"pixels_{camera}"


def fast_visuals(model: mujoco.MjModel, max_height: int, max_width: int) -> None:
    """Turn shadows/reflection multisampling off and size the offscreen buffer (mutates ``model.vis``)."""
    model.vis.quality.shadowsize = 0
    model.vis.quality.offsamples = 0
    model.vis.global_.offwidth = int(max_width)
    model.vis.global_.offheight = int(max_height)


class OffscreenCamera:
    """Renders ``data`` from one camera into uint8 (height, width, 3) frames.

    Args:
        model, data: the simulation to draw (the model's offscreen buffer must be at least this big;
            see ``fast_visuals``).
        height, width: frame size in pixels.
        camera: a camera name or id defined in the model, or a dict of free-camera settings
            (``lookat``, ``distance``, ``azimuth``, ``elevation``).
        rotate180: rotate frames by 180 degrees (Meta-World's cameras render upside down).
    """

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, height: int, width: int,
                 camera: str | int | dict, rotate180: bool = False) -> None:
        if isinstance(camera, str) and mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
            names = [model.camera(i).name for i in range(model.ncam)]
            raise KeyError(f"camera {camera!r} is not in the model; available cameras: {names}")
        if isinstance(camera, int) and not 0 <= camera < model.ncam:
            raise KeyError(f"camera id {camera} out of range: the model has {model.ncam} cameras")
        self._data = data
        self._rotate180 = rotate180
        self._renderer = mujoco.Renderer(model, height=height, width=width)
        if isinstance(camera, dict):
            cam = mujoco.MjvCamera()
            cam.type = mujoco.mjtCamera.mjCAMERA_FREE
            for key, value in camera.items():
                if key == "lookat":
                    cam.lookat[:] = value
                else:
                    setattr(cam, key, value)
            self._camera: str | int | mujoco.MjvCamera = cam
        else:
            self._camera = camera

    def render(self) -> np.ndarray:
        """Current frame, uint8 (H, W, 3)."""
        self._renderer.update_scene(self._data, camera=self._camera)
        frame = self._renderer.render()
        return np.ascontiguousarray(frame[::-1, ::-1]) if self._rotate180 else frame

    def close(self) -> None:
        self._renderer.close()


class CameraObservations(gym.ObservationWrapper):
    """Adds ``pixels_<camera>`` (uint8 (image_size, image_size, 3)) for every camera in ``cameras``.

    Works on any ttfkit ``TaskEnv`` (``env.unwrapped._env`` is the simulator with ``.model`` and
    ``.data``); frames are oriented as the env's own ``pixels`` (Meta-World's cameras are turned 180
    degrees) and drawn after the simulator's render callback (Fetch moves its goal marker there).

    Args:
        env: the env to wrap.
        cameras: camera names of the model (each at most once).
        image_size: side of every frame.
    """

    def __init__(self, env: gym.Env, cameras: Sequence[str], image_size: int = 96) -> None:
        super().__init__(env)
        cameras = list(cameras)
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f"cameras must be a non-empty list of distinct names, got {cameras}")
        if image_size <= 0:
            raise ValueError(f"{image_size=} must be positive")
        base = env.unwrapped
        sim = base._env
        vis = sim.model.vis.global_
        fast_visuals(sim.model, max(image_size, vis.offheight), max(image_size, vis.offwidth))
        self._sim = sim
        self._cameras = {camera_key(c): OffscreenCamera(sim.model, sim.data, image_size, image_size, c,
                                                        rotate180=getattr(base, "_rotate180", False))
                         for c in cameras}
        clash = sorted(set(self._cameras) & set(env.observation_space.spaces))
        if clash:
            raise ValueError(f"camera keys {clash} clash with the env's observation keys")
        self.observation_space = spaces.Dict({
            **env.observation_space.spaces,
            **{k: spaces.Box(0, 255, (image_size, image_size, 3), np.uint8) for k in self._cameras}})

    def observation(self, observation: dict) -> dict:
        callback = getattr(self._sim, "_render_callback", None)
        if callback is not None:
            callback()
        return {**observation, **{k: cam.render() for k, cam in self._cameras.items()}}

    def close(self) -> None:
        for cam in self._cameras.values():
            cam.close()
        self._cameras.clear()
        super().close()
