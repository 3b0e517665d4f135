"""Shared test settings: CPU only, few threads, offscreen MuJoCo rendering."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import torch  # noqa: E402

torch.set_num_threads(1)
