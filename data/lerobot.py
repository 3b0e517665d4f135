"""Convert between ttfkit zarr stores and LeRobotDataset directories (format v3.0, LeRobot 0.4.4).

Key mapping (ttfkit zarr key <-> LeRobot feature), the names LeRobot's gym wrappers give::

    agent_pos           <-> observation.state
    environment_state   <-> observation.environment_state
    action              <-> action
    reward              <-> next.reward
    success             <-> next.success
    pixels (T, H, W, 3) <-> observation.image          (LeRobot's name for a single camera)
    <K> (T, H, W, 3) u8 <-> observation.images.<K>     (every other image key)
    any other key       <-> the same name

Both directions go through LeRobot's own API: export writes with ``LeRobotDataset.create`` /
``add_frame`` / ``save_episode`` / ``finalize`` (so ``meta/stats.json`` holds LeRobot's own
statistics), import reads with ``LeRobotDataset(repo_id, root=...)``; neither touches the network.
Images are stored as PNG inside the parquet files by default (exact), or as video with
``use_videos=True`` (lossy codec, decoded back to uint8 on import).

Export also writes ``meta/ttfkit.json`` (ignored by LeRobot): the zarr key, dtype and trailing shape
of every feature plus the store's attrs, so that zarr -> LeRobot -> zarr gives back every array with
its dtype and shape (a per-step scalar (T,) becomes LeRobot shape (1,) and comes back as (T,)).
Without that file, import uses the table above in reverse and keeps LeRobot's shapes.
Both writes are atomic: the result is built in a temporary sibling and renamed into place.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ttfkit.data.atomic import replace_path
from ttfkit.data.replay_buffer import ReplayBuffer

__all__ = ["export_lerobot", "import_lerobot"]

logger = logging.getLogger(__name__)

_KEY_MAP = {
    "agent_pos": "observation.state",
    "environment_state": "observation.environment_state",
    "action": "action",
    "reward": "next.reward",
    "success": "next.success",
}
_IMAGE_PREFIX = "observation.images."
_SINGLE_CAMERA = "observation.image"  # LeRobot's gym wrapper gives a single `pixels` array this name
# Columns LeRobot adds to every frame; they never come from (or go to) a zarr key.
_LEROBOT_BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")
_SIDECAR = "meta/ttfkit.json"
_KIND = "lerobot-dataset"  # ttfkit.data.atomic marker: --overwrite replaces only another dataset export
_SIDECAR_VERSION = 1
_NUMERIC_DTYPES = ("float32", "float64", "int64", "int32", "bool")


def export_lerobot(zarr_path: str | os.PathLike, out_dir: str | os.PathLike, fps: int,
                   task: str | None = None, *, repo_id: str | None = None, use_videos: bool = False,
                   overwrite: bool = False, on_episode: Callable[[int, int], None] | None = None) -> Path:
    """Write the zarr store at ``zarr_path`` as a LeRobotDataset v3.0 directory ``out_dir``.

    Args:
        zarr_path: ttfkit / Diffusion Policy zarr store (``data/<key>`` (T, ...), ``meta/episode_ends``).
        out_dir: dataset root to create (``meta/info.json``, ``data/chunk-000/...``).
        fps: frames per second of the recording (LeRobot's timestamps are ``frame_index / fps``).
        task: task text stored with every frame; default: the store's ``task`` or ``env_id`` attr,
            else ``"default"``.
        repo_id: LeRobot's dataset name; default ``local/<out_dir name>``.
        use_videos: store image keys as video (lossy) instead of PNG frames (exact).
        overwrite: replace an existing ``out_dir``; otherwise ``FileExistsError``.
        on_episode: called as ``on_episode(done, total)`` after each episode is written (progress).

    Returns:
        ``out_dir`` as a Path.
    """
    LeRobotDataset = _lerobot_dataset_class()
    if not isinstance(fps, int) or fps <= 0:
        raise ValueError(f"fps must be a positive int, got {fps!r}")
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass overwrite=True to replace it)")
    buf = ReplayBuffer.open(zarr_path, mode="r")
    if buf.n_episodes == 0:
        raise ValueError(f"{buf.path}: the store has no episodes to export")
    spec = _export_spec(buf, use_videos)
    attrs = dict(buf.attrs)
    if task is None:
        task = str(attrs.get("task", attrs.get("env_id", "default")))
    features = {item["feature"]: item["lerobot"] for item in spec}

    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        ds = LeRobotDataset.create(repo_id or f"local/{out.name}", fps=fps, features=features,
                                   root=tmp, use_videos=use_videos)
        for i in range(buf.n_episodes):
            episode = buf.get_episode(i)
            for t in range(len(next(iter(episode.values())))):
                frame = {item["feature"]: _to_frame_value(episode[item["key"]][t])
                         for item in spec}
                frame["task"] = task
                ds.add_frame(frame)
            _unwrap_scalar_features(ds, spec)
            ds.save_episode()
            if on_episode is not None:
                on_episode(i + 1, buf.n_episodes)
        ds.finalize()
        sidecar = {"version": _SIDECAR_VERSION, "attrs": attrs, "task": task,
                   "features": {item["feature"]: {"key": item["key"], "dtype": item["dtype"],
                                                  "shape": item["shape"]} for item in spec}}
        (tmp / _SIDECAR).write_text(json.dumps(sidecar, indent=2))
        replace_path(tmp, out, kind=_KIND, legacy=lambda p: (p / _SIDECAR).is_file())  # older exports: generic
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    logger.info("exported %s (%d episodes, %d steps) to %s", buf.path, buf.n_episodes,
                buf.n_steps, out)
    return out


def import_lerobot(lerobot_dir: str | os.PathLike, out_zarr: str | os.PathLike, *,
                   repo_id: str | None = None, overwrite: bool = False,
                   on_episode: Callable[[int, int], None] | None = None) -> ReplayBuffer:
    """Read the LeRobotDataset at ``lerobot_dir`` (offline) into a new zarr store ``out_zarr``.

    Every feature except LeRobot's bookkeeping columns (timestamp, frame_index, episode_index,
    index, task_index) becomes a zarr key (see the module docstring for names and shapes); images
    come back as uint8 (T, H, W, C). The tasks and LeRobot's ``info.json`` travel in the store attrs
    (``lerobot_tasks``, ``lerobot_info``) unless the dataset came from :func:`export_lerobot`, whose
    attrs are restored as they were. ``on_episode(done, total)`` is called after each episode (progress).
    Returns the new store opened for reading.
    """
    LeRobotDataset = _lerobot_dataset_class()
    root = Path(lerobot_dir)
    if not (root / "meta" / "info.json").is_file():
        raise FileNotFoundError(f"{root}: not a LeRobotDataset (no meta/info.json)")
    ds = LeRobotDataset(repo_id or f"local/{root.name}", root=root)
    sidecar = _read_sidecar(root)
    table = _import_table(ds.meta.features, sidecar, root)
    video_keys = [f for f in table if ds.meta.features[f]["dtype"] == "video"]
    frames = ds.hf_dataset.with_format("numpy")
    starts = np.asarray(ds.meta.episodes["dataset_from_index"], dtype=np.int64)
    stops = np.asarray(ds.meta.episodes["dataset_to_index"], dtype=np.int64)
    if sidecar is not None:
        attrs = sidecar["attrs"]
    else:
        attrs = {"lerobot_tasks": list(ds.meta.tasks.index), "lerobot_info": ds.meta.info}

    video_cache: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
    with ReplayBuffer.build(out_zarr, attrs=attrs, overwrite=overwrite) as out:
        for i, (start, stop) in enumerate(zip(starts, stops)):
            columns = frames[int(start):int(stop)]
            episode = {}
            for feature, (key, shape, dtype) in table.items():
                if feature in video_keys:
                    value = _decode_video(ds, feature, i, np.asarray(columns["timestamp"]),
                                          video_cache)
                else:
                    value = np.asarray(columns[feature])
                episode[key] = value.reshape(len(value), *shape).astype(dtype, copy=False)
            out.add_episode(episode)
            if on_episode is not None:
                on_episode(i + 1, len(starts))
    logger.info("imported %s (%d episodes) to %s", root, len(starts), out_zarr)
    return ReplayBuffer.open(out_zarr, mode="r")


def _lerobot_dataset_class() -> type:
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    except ImportError as err:
        raise ImportError("LeRobot dataset conversion needs LeRobot 0.4.4 beside ttfkit's torch: run "
                          f"`make lerobot` (requirements-lerobot.txt, installed --no-deps): {err}") from err
    return LeRobotDataset


# ---------------------------------------------------------------------- export helpers
def _export_spec(buf: ReplayBuffer, use_videos: bool) -> list[dict[str, Any]]:
    """One entry per zarr key: its LeRobot feature name and feature dict, dtype, trailing shape."""
    spec, taken = [], {}
    for key in buf.keys():
        arr = buf[key]
        dtype, trailing = np.dtype(arr.dtype), tuple(int(s) for s in arr.shape[1:])
        is_image = len(trailing) == 3 and dtype == np.uint8 and trailing[-1] == 3
        if is_image:
            feature = _SINGLE_CAMERA if key == "pixels" else _IMAGE_PREFIX + key
            lerobot = {"dtype": "video" if use_videos else "image", "shape": trailing,
                       "names": ["height", "width", "channels"]}
        else:
            if dtype.name not in _NUMERIC_DTYPES:
                raise ValueError(f"{buf.path}: key {key!r} has dtype {dtype}; LeRobot export "
                                 f"supports {_NUMERIC_DTYPES} and uint8 images (T, H, W, 3)")
            feature = _KEY_MAP.get(key, key)
            lerobot = {"dtype": dtype.name, "shape": trailing or (1,), "names": None}
        if feature in _LEROBOT_BOOKKEEPING or feature in taken:
            clash = "a LeRobot bookkeeping column" if feature in _LEROBOT_BOOKKEEPING else \
                f"also the name for key {taken[feature]!r}"
            raise ValueError(f"{buf.path}: key {key!r} maps to LeRobot feature {feature!r}, "
                             f"which is {clash}; rename the key")
        taken[feature] = key
        spec.append({"key": key, "feature": feature, "lerobot": lerobot, "dtype": dtype.name,
                     "shape": list(trailing)})
    return spec


def _to_frame_value(value: np.ndarray) -> np.ndarray:
    """One step of a zarr key as LeRobot's ``add_frame`` wants it (scalars become shape (1,))."""
    value = np.asarray(value)
    return value.reshape(1) if value.ndim == 0 else value


def _unwrap_scalar_features(ds: Any, spec: list[dict[str, Any]]) -> None:
    """Turn the buffered (1,)-shaped frames of per-step scalar keys into numpy scalars.

    ``add_frame`` insists on shape (1,) for such features, but LeRobot 0.4.4 then stacks them to
    (T, 1) and hands rows to ``datasets.Value``, whose ``float(row)`` raises on numpy >= 2.4
    ("only 0-dimensional arrays can be converted"). LeRobot's own per-step scalars (timestamp,
    frame_index) are buffered as plain scalars, which is what this does for ours.
    """
    for item in spec:
        if item["lerobot"]["dtype"] not in ("image", "video") and item["lerobot"]["shape"] == (1,):
            ds.episode_buffer[item["feature"]] = [v[0] for v in ds.episode_buffer[item["feature"]]]


# ---------------------------------------------------------------------- import helpers
def _read_sidecar(root: Path) -> dict[str, Any] | None:
    path = root / _SIDECAR
    if not path.is_file():
        return None
    sidecar = json.loads(path.read_text())
    if sidecar.get("version") != _SIDECAR_VERSION:
        raise ValueError(f"{path}: unsupported version {sidecar.get('version')!r} "
                         f"(this ttfkit reads version {_SIDECAR_VERSION})")
    return sidecar


def _import_table(features: dict[str, dict], sidecar: dict[str, Any] | None, root: Path
                  ) -> dict[str, tuple[str, tuple[int, ...], str]]:
    """LeRobot feature -> (zarr key, trailing shape, numpy dtype) for every data feature."""
    inverse = {v: k for k, v in _KEY_MAP.items()}
    table = {}
    for feature, ft in features.items():
        if feature in _LEROBOT_BOOKKEEPING:
            continue
        if sidecar is not None:
            if feature not in sidecar["features"]:
                raise KeyError(f"{root / _SIDECAR}: no entry for LeRobot feature {feature!r}")
            entry = sidecar["features"][feature]
            table[feature] = (entry["key"], tuple(entry["shape"]), entry["dtype"])
            continue
        if ft["dtype"] in ("image", "video"):
            key = "pixels" if feature == _SINGLE_CAMERA else \
                feature.removeprefix(_IMAGE_PREFIX).replace(".", "_")
            shape, dtype = tuple(ft["shape"]), "uint8"
            if ft.get("names") and list(ft["names"][:1]) == ["channels"]:
                raise ValueError(f"{root}: image feature {feature!r} is channels-first "
                                 f"{ft['names']}; only (height, width, channels) is supported")
        else:
            key, shape, dtype = inverse.get(feature, feature), tuple(ft["shape"]), ft["dtype"]
            if dtype == "string":
                raise ValueError(f"{root}: feature {feature!r} holds strings; zarr import "
                                 "supports numeric and image features only")
        table[feature] = (key, shape, dtype)
    return table


def _decode_video(ds: Any, feature: str, episode: int, timestamps: np.ndarray,
                  cache: dict[Path, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Frames of ``episode`` at ``timestamps`` (seconds from the episode start), uint8 (T, H, W, C).

    Decoded with PyAV from the episode's mp4 (LeRobot 0.4.4 reads video through torchcodec, which
    needs a system FFmpeg, or through ``torchvision.io.VideoReader``, gone from torchvision 0.28).
    Each wanted time takes the nearest frame; one further than half a frame period is an error.
    """
    import av

    path = ds.root / ds.meta.get_video_file_path(episode, feature)
    if path not in cache:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            decoded = [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24"))
                       for f in container.decode(stream)]
        cache[path] = (np.array([t for t, _ in decoded]), np.stack([x for _, x in decoded]))
    times, frames = cache[path]
    wanted = float(ds.meta.episodes[episode][f"videos/{feature}/from_timestamp"]) + timestamps
    nearest = np.abs(times[None, :] - wanted[:, None]).argmin(1)
    gap = np.abs(times[nearest] - wanted).max(initial=0.0)
    if gap > 0.5 / ds.fps:
        raise ValueError(f"{path}: no frame within half a period of t={wanted[0]:.3f}s.. "
                         f"(largest gap {gap:.4f}s at {ds.fps} fps)")
    return frames[nearest]
