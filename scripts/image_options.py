"""The env options that render what a checkpoint reads: one code path for ``ttf eval``, ``ttf align`` and
``ttf critic`` (and, through them, ``ttf gap``).

A policy that reads ``pixels`` (one camera) or ``pixels_<camera>`` keys (several cameras) must see images
of the side it was trained at, from the camera its training store recorded. :func:`image_options` turns
a policy's observation shapes (image keys are (C, H, W)) and the optional ``--image-size`` / ``--camera``
flags into ``make_env`` options::

    {"pixels": True, "image_size": 24, "camera": "corner2"}      # a policy reading `pixels`
    {"image_size": 24, "cameras": ["corner", "gripper"]}          # a policy reading pixels_corner, pixels_gripper

The camera comes from --camera, else from the store's recorded ``env_kwargs`` (``ttf collect`` writes
them; ``ttfkit.envs.from_store.recorded_image_options``), else the env's default. A flag that contradicts
the checkpoint (another image side, other cameras) is a ``ValueError`` naming both. A policy that reads no
images gets ``{}`` (and the flags are refused unless ``pixels`` asks for images anyway).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

__all__ = ["add_image_arguments", "image_options", "training_dataset"]


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """``--image-size`` and ``--camera``, with the same meaning on every subcommand that runs a policy."""
    parser.add_argument("--image-size", type=int, default=None,
                        help="side of the rendered images (default: the checkpoint's image size, else the env's)")
    parser.add_argument("--camera", nargs="+", default=None, metavar="NAME",
                        help="camera(s) of the images (default: the checkpoint's training store's, else the env's; "
                             "a policy reading pixels_<NAME> keys renders those cameras)")


def image_options(obs_shapes: dict, *, image_size: int | None = None, camera: list[str] | None = None,
                  pixels: bool = False, checkpoint: str | os.PathLike | None = None,
                  dataset: str | os.PathLike | None = None) -> dict:
    """``make_env`` options rendering what a policy with ``obs_shapes`` ({key: shape}, images (C, H, W))
    reads (see module docstring).

    Args:
        image_size, camera: the --image-size / --camera flags (None: not given; camera entries may be
            comma-separated).
        pixels: images were asked for although the policy reads none (``ttf eval --pixels``).
        checkpoint: the policy's checkpoint (or ``ttf distill`` directory); its training store names the
            camera when ``dataset`` is None.
        dataset: the store whose recorded camera and image size apply.
    """
    from ttfkit.envs.from_store import recorded_image_options

    image_keys = [k for k in obs_shapes if k == "pixels" or k.startswith("pixels_")]
    cameras = [c for arg in camera or [] for c in arg.split(",") if c]
    recorded = {}
    if image_keys and not cameras and (dataset is not None or checkpoint is not None):
        recorded = recorded_image_options(dataset or training_dataset(checkpoint))
    options: dict = {}
    sides = {k: int(obs_shapes[k][-1]) for k in image_keys}
    if image_size is not None:
        wrong = {k: s for k, s in sides.items() if s != image_size}
        if wrong:
            raise ValueError(f"--image-size {image_size}: the checkpoint reads images of side {wrong}")
        options["image_size"] = image_size
    elif sides:
        options["image_size"] = next(iter(sides.values()))
    elif "image_size" in recorded:
        options["image_size"] = recorded["image_size"]
    named = sorted(k[len("pixels_"):] for k in image_keys if k.startswith("pixels_"))
    if named:
        if cameras and cameras != named:
            raise ValueError(f"--camera {' '.join(cameras)}: the checkpoint reads cameras {named}")
        options["cameras"] = named
    elif cameras:
        if len(cameras) > 1:
            raise ValueError(f"--camera {' '.join(cameras)}: a policy reading one `pixels` key takes one camera")
        options["camera"] = cameras[0]
    elif "camera" in recorded:
        options["camera"] = recorded["camera"]
    if not image_keys and not pixels:
        if options:
            raise ValueError("--image-size/--camera need a checkpoint that reads images (or `ttf eval --pixels`)")
        return {}
    if "pixels" in image_keys or (pixels and not named):
        options["pixels"] = True
    return options


def training_dataset(checkpoint: str | os.PathLike | None) -> str | None:
    """The store ``checkpoint`` was trained on (a policy checkpoint's ``train_config.dataset``, a ``ttf
    distill`` directory's ``dataset``), or None when it names none."""
    if checkpoint is None:
        return None
    config = Path(checkpoint) / "config.json"
    if config.is_file():
        data = json.loads(config.read_text())
        if data.get("kind") == "diamond_map":
            return data.get("metadata", {}).get("dataset")
    from ttfkit.policies.checkpoint import read_config

    return read_config(checkpoint).get("metadata", {}).get("train_config", {}).get("dataset")
