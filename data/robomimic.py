"""Import a robomimic HDF5 dataset into a ttfkit/Diffusion Policy zarr store.

robomimic layout read here: ``data/demo_N/{obs/<key>, actions, rewards, dones}`` with the ``data``
group's ``env_args`` attribute (a JSON string). Demos are taken in numeric order (demo_9 before
demo_10), not HDF5's lexicographic one.

Written keys: every chosen observation under its robomimic name (e.g. ``robot0_eef_pos``,
``agentview_image``); ``action`` (float32, from ``actions``), ``reward`` (float32, from ``rewards``)
and ``done`` (uint8, from ``dones``) when present; with ``states=True`` also ``states`` (the
simulator states, kept float64 so that they replay exactly; every demo must have them). Floating
observations become float32, uint8 images (T, H, W, C) stay uint8 and float images (depth
(T, H, W, 1)) become float32 images. Store attrs: ``source`` = "robomimic", ``source_path``,
``env_args`` (parsed JSON, or the raw string if it does not parse), ``demo_names`` (in order) and
``filter_keys``: robomimic's ``mask/<filter_key>`` lists of demo names (``train``, ``valid``,
``20_percent``, ...) as ``{filter_key: [episode index, ...]}``, which
``SequenceDataset(..., filter_key=...)`` selects. The store is built in a temporary sibling and
renamed into place when complete.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ttfkit.data.replay_buffer import ReplayBuffer

__all__ = ["import_robomimic"]

logger = logging.getLogger(__name__)

_DEMO = re.compile(r"^demo_(\d+)$")
_RENAMED = {"actions": ("action", np.float32), "rewards": ("reward", np.float32),
            "dones": ("done", np.uint8)}


def import_robomimic(in_hdf5: str | os.PathLike, out_zarr: str | os.PathLike,
                     obs_keys: Sequence[str] | None = None, overwrite: bool = False,
                     states: bool = False) -> ReplayBuffer:
    """Convert ``in_hdf5`` (robomimic layout) to a zarr replay buffer at ``out_zarr``.

    Args:
        in_hdf5: robomimic HDF5 file.
        out_zarr: output store; must not exist unless ``overwrite``.
        obs_keys: observation keys to keep (default: every key under the first demo's ``obs/``).
        overwrite: replace an existing ``out_zarr``.
        states: also import each demo's ``states`` (float64) as key ``states``.

    Returns:
        The new store, opened read-only.
    """
    import h5py

    in_hdf5, out_zarr = Path(in_hdf5), Path(out_zarr)
    if out_zarr.exists() and not overwrite:
        raise FileExistsError(f"{out_zarr}: already exists (pass overwrite=True / --overwrite)")
    with h5py.File(in_hdf5, "r") as f:
        if "data" not in f:
            raise KeyError(f"{in_hdf5}: missing group 'data' (not a robomimic file)")
        data = f["data"]
        demos = _sorted_demos(in_hdf5, list(data.keys()))
        first = data[demos[0]]
        if "obs" not in first:
            raise KeyError(f"{in_hdf5}: data/{demos[0]} has no 'obs' group")
        keys = list(first["obs"].keys()) if obs_keys is None else list(obs_keys)
        if not keys:
            raise ValueError(f"{in_hdf5}: no observation keys chosen")
        attrs = {"source": "robomimic", "source_path": str(in_hdf5.resolve()),
                 "env_args": _env_args(data.attrs.get("env_args")), "demo_names": demos,
                 "filter_keys": _filter_keys(in_hdf5, f.get("mask"), demos)}
        with ReplayBuffer.build(out_zarr, attrs=attrs, overwrite=overwrite) as buf:
            for name in demos:
                buf.add_episode(_read_demo(in_hdf5, name, data[name], keys, states))
        logger.info("imported %d demos (%d steps) from %s to %s", buf.n_episodes, buf.n_steps,
                    in_hdf5, out_zarr)
    return ReplayBuffer.open(out_zarr, mode="r")


def _sorted_demos(path: Path, names: list[str]) -> list[str]:
    demos = [n for n in names if _DEMO.match(n)]
    others = sorted(set(names) - set(demos))
    if others:
        logger.warning("%s: ignoring entries of data/ that are not demo_N: %s", path, others)
    if not demos:
        raise ValueError(f"{path}: data/ holds no demo_N groups (found {names})")
    return sorted(demos, key=lambda n: int(_DEMO.match(n).group(1)))


def _env_args(raw: object) -> object:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        return json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        return str(raw)


def _filter_keys(path: Path, mask, demos: list[str]) -> dict[str, list[int]]:
    """robomimic's ``mask/<filter_key>`` (demo names, bytes) -> {filter_key: sorted episode indices}."""
    index = {name: i for i, name in enumerate(demos)}
    out = {}
    for key in (mask.keys() if mask is not None else ()):
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(mask[key][()]).ravel()]
        unknown = sorted(set(names) - set(index))
        if unknown:
            raise KeyError(f"{path}: mask/{key} names demos that data/ does not hold: {unknown[:5]}")
        out[key] = sorted(index[n] for n in set(names))
    return out


def _read_demo(path: Path, name: str, demo, keys: Sequence[str], states: bool
               ) -> dict[str, np.ndarray]:
    obs = demo.get("obs")
    episode = {}
    for key in keys:
        if obs is None or key not in obs:
            have = sorted(obs.keys()) if obs is not None else []
            raise KeyError(f"{path}: data/{name}/obs has no key {key!r}; available: {have}")
        x = np.asarray(obs[key][()])
        episode[key] = x.astype(np.float32) if x.dtype.kind == "f" else x
    if "actions" not in demo:
        raise KeyError(f"{path}: data/{name} has no 'actions' dataset")
    for src, (dst, dtype) in _RENAMED.items():
        if src in demo:
            x = np.asarray(demo[src][()])
            episode[dst] = x.astype(dtype)
    if states:
        if "states" not in demo:
            raise KeyError(f"{path}: data/{name} has no 'states' dataset (import without states)")
        episode["states"] = np.asarray(demo["states"][()], dtype=np.float64)  # exact for replay
    if episode["action"].ndim != 2:
        raise ValueError(f"{path}: data/{name}/actions has shape {episode['action'].shape}; "
                         f"expected (T, Da)")
    return episode
