"""Small offscreen MuJoCo camera used by every ttfkit env for ``pixels`` and ``render()``.

Software rendering (``MUJOCO_GL=egl`` or ``osmesa``) is slow with MuJoCo's default visual quality;
``fast_visuals`` turns shadows and multisampling off (``model.vis.quality.shadowsize = 0``,
``offsamples = 0``), which is ~10x faster at 96x96, and shrinks the offscreen buffer to what the
env needs. Frames are uint8 (H, W, 3), row 0 at the top.
"""

from __future__ import annotations

import mujoco
import numpy as np

__all__ = ["OffscreenCamera", "fast_visuals"]


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
