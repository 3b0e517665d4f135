"""Zarr-backed episodic store in Diffusion Policy's layout.

Layout (identical to Diffusion Policy's ``ReplayBuffer``, so either side opens the other's stores)::

    <path>/                  root group, attrs = free-form JSON metadata (env id, expert, seeds, ...)
        data/<key>           one array per key, shape (T, ...), all episodes concatenated on axis 0
        meta/episode_ends    int64 (E,), cumulative end index of every episode (exclusive)

ttfkit writes ``zarr_format=2`` (Diffusion Policy's code uses the zarr 2 API), compresses every array
with Blosc/zstd and chunks along time only, about ``_CHUNK_BYTES`` per chunk (the chunk length
follows from each key's trailing shape and dtype). Images are uint8 (T, H, W, C).

Crash safety: ``add_episode`` validates the whole episode first, appends the data arrays, and
extends ``meta/episode_ends`` last. Every chunk file is replaced atomically by zarr's LocalStore, so
an append interrupted at any point leaves (a) data arrays longer than ``episode_ends[-1]`` and/or
(b) one trailing ``episode_ends`` slot holding the reserved fill value (int64 max) when the crash
hit between the resize and the write of ``episode_ends``. ``open`` recognises both: in ``"r"`` mode
the tail is ignored (``n_steps`` and every read stop at ``episode_ends[-1]``; ``buffer[key]``
still returns the full zarr array, so slice it with ``[:n_steps]``), in ``"a"`` mode the tail is
truncated before the next append. Every earlier episode stays intact in both cases.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr

from ttfkit.data.atomic import replace_path

__all__ = ["ReplayBuffer"]

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 2 * 1024 * 1024  # target uncompressed chunk size, as Diffusion Policy's (~2 MB)
_ENDS_CHUNK = 1 << 16  # episode_ends entries per chunk
_ENDS_FILL = np.iinfo(np.int64).max  # reserved: marks an episode_ends slot resized but not written
_IMAGE_CHANNELS = (1, 3, 4)


def _compressor() -> numcodecs.Blosc:
    return numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE)


def _chunk_length(trailing: tuple[int, ...], dtype: np.dtype) -> int:
    """Time steps per chunk so that one chunk holds about ``_CHUNK_BYTES`` (at least 1 step)."""
    step_bytes = max(1, math.prod(trailing) * np.dtype(dtype).itemsize)
    return max(1, _CHUNK_BYTES // step_bytes)


class ReplayBuffer:
    """Episodic zarr store: ``data/<key>`` arrays (T, ...) plus ``meta/episode_ends`` (int64).

    Build with :meth:`create` (or :meth:`build` for a store that appears only once complete) and
    open with :meth:`open`; the constructor is internal. Keys, dtypes and trailing shapes are fixed
    by the first episode; every later episode must match them exactly.

    Example::

        buf = ReplayBuffer.create("demos.zarr", attrs={"env_id": "ttfkit/metaworld-reach-v3"})
        buf.add_episode({"agent_pos": pos, "environment_state": env, "action": act})  # (T, ...)
        ep = ReplayBuffer.open("demos.zarr").get_episode(0)  # dict[str, np.ndarray]
    """

    def __init__(self, root: zarr.Group, path: Path, mode: str) -> None:
        self._root = root
        self._path = path
        self._mode = mode
        self._ends = np.zeros(0, dtype=np.int64)
        self._load_and_check()

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, path: str | os.PathLike, attrs: Mapping[str, Any] | None = None,
               overwrite: bool = False) -> ReplayBuffer:
        """Create an empty store at ``path`` and return it opened in ``"a"`` mode.

        The empty store is written to a temporary sibling and renamed into place, so ``path``
        never holds a half-written store. Raises ``FileExistsError`` if ``path`` exists and
        ``overwrite`` is False; with ``overwrite=True`` the old store is replaced.
        """
        path = Path(path)
        tmp = _tmp_sibling(path)
        try:
            _init_store(tmp, attrs)
            _move_into_place(tmp, path, overwrite)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return cls.open(path, mode="a")

    @classmethod
    @contextlib.contextmanager
    def build(cls, path: str | os.PathLike, attrs: Mapping[str, Any] | None = None,
              overwrite: bool = False) -> Iterator[ReplayBuffer]:
        """Context manager: fill a new store in a temporary sibling, rename it to ``path`` on success.

        If the block raises, the temporary store is deleted and ``path`` is untouched. After the
        block the yielded buffer points at ``path``. ``FileExistsError`` as in :meth:`create`
        (checked before any work and again at the rename).
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path}: a file or store already exists (pass overwrite=True)")
        tmp = _tmp_sibling(path)
        try:
            _init_store(tmp, attrs)
            buf = cls.open(tmp, mode="a")
            yield buf
            _move_into_place(tmp, path, overwrite)
            buf._root = zarr.open_group(str(path), mode="a", zarr_format=2)
            buf._path = path
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r") -> ReplayBuffer:
        """Open an existing store (ttfkit's or Diffusion Policy's) for reading (``"r"``) or appending
        (``"a"``). Validates ``meta/episode_ends`` against the data arrays; see the module docstring
        for how an interrupted append is handled."""
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such zarr store")
        try:
            root = zarr.open_group(str(path), mode="r" if mode == "r" else "r+")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as e:
            raise ValueError(f"{path}: not a zarr group ({e})") from e
        return cls(root, path, mode)

    # ------------------------------------------------------------------ properties
    @property
    def path(self) -> Path:
        return self._path

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def episode_ends(self) -> np.ndarray:
        """Cumulative (exclusive) end index of each episode, int64 (E,). A copy."""
        return self._ends.copy()

    @property
    def episode_lengths(self) -> np.ndarray:
        """Length of each episode, int64 (E,)."""
        return np.diff(self._ends, prepend=0)

    @property
    def n_episodes(self) -> int:
        return int(self._ends.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self._ends[-1]) if self._ends.size else 0

    @property
    def attrs(self) -> Any:
        """Root-group attributes (dict-like, JSON values; writable in ``"a"`` mode)."""
        return self._root.attrs

    def keys(self) -> list[str]:
        """Data keys, sorted."""
        return sorted(self._root["data"].array_keys()) if "data" in self._root else []

    def __contains__(self, key: str) -> bool:
        return key in self.keys()

    def __getitem__(self, key: str) -> zarr.Array:
        """The zarr array ``data/<key>`` (T', ...). T' may exceed ``n_steps`` after an interrupted
        append in ``"r"`` mode; slice with ``[:n_steps]``."""
        keys = self.keys()
        if key not in keys:
            raise KeyError(f"{self._path}: unknown key {key!r} in data/; available: {keys}")
        return self._root["data"][key]

    def __len__(self) -> int:
        return self.n_episodes

    def __repr__(self) -> str:
        return (f"ReplayBuffer({str(self._path)!r}, mode={self._mode!r}, "
                f"episodes={self.n_episodes}, steps={self.n_steps}, keys={self.keys()})")

    # ------------------------------------------------------------------ reading
    def episode_slice(self, i: int) -> slice:
        """Time slice of episode ``i`` (negative counts from the end) in the data arrays."""
        n = self.n_episodes
        if not -n <= i < n:
            raise IndexError(f"{self._path}: episode {i} out of range for {n} episodes")
        i %= n
        start = int(self._ends[i - 1]) if i > 0 else 0
        return slice(start, int(self._ends[i]))

    def get_episode(self, i: int, keys: list[str] | tuple[str, ...] | None = None
                    ) -> dict[str, np.ndarray]:
        """Episode ``i`` as ``{key: np.ndarray (T_i, ...)}`` (all keys unless ``keys`` is given)."""
        sl = self.episode_slice(i)
        return {k: self[k][sl] for k in (self.keys() if keys is None else keys)}

    # ------------------------------------------------------------------ writing
    def add_episode(self, episode: Mapping[str, np.ndarray]) -> None:
        """Append one episode ``{key: array (T, ...)}``; validated completely before anything is
        written. The first episode fixes keys, dtypes and trailing shapes; later ones must match.
        Floating-point values must be finite; 4-D arrays are images and must be uint8 (T, H, W, C)."""
        if self._mode != "a":
            raise PermissionError(f"{self._path}: opened read-only (mode='r'); open with mode='a'")
        arrays = self._validate_episode(episode)
        data = self._root.require_group("data")
        for key, value in arrays.items():
            if key in data:
                data[key].append(value, axis=0)
            else:
                trailing = value.shape[1:]
                arr = data.create_array(
                    key, shape=(0, *trailing), dtype=value.dtype,
                    chunks=(_chunk_length(trailing, value.dtype), *trailing),
                    compressors=_compressor())
                arr.append(value, axis=0)
        new_end = self.n_steps + next(iter(arrays.values())).shape[0]
        self._root["meta/episode_ends"].append(np.array([new_end], dtype=np.int64))  # last
        self._ends = np.append(self._ends, np.int64(new_end))

    def _validate_episode(self, episode: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        where = f"{self._path}: add_episode"
        if not isinstance(episode, Mapping) or not episode:
            raise ValueError(f"{where}: expected a non-empty dict of arrays, got {type(episode)}")
        existing = self.keys()
        if existing and set(episode) != set(existing):
            missing = sorted(set(existing) - set(episode))
            extra = sorted(set(episode) - set(existing))
            raise KeyError(f"{where}: keys differ from the store's; missing {missing}, "
                           f"unexpected {extra}")
        arrays = {str(k): np.asarray(v) for k, v in episode.items()}
        lengths = {k: (v.shape[0] if v.ndim else None) for k, v in arrays.items()}
        for key, value in arrays.items():
            if value.ndim == 0:
                raise ValueError(f"{where}: key {key!r} is a scalar; expected (T, ...)")
            if value.dtype.kind not in "biuf":
                raise ValueError(f"{where}: key {key!r} has unsupported dtype {value.dtype}")
            if value.ndim == 4 and (value.dtype != np.uint8
                                    or value.shape[-1] not in _IMAGE_CHANNELS):
                raise ValueError(f"{where}: key {key!r} looks like images {value.shape} "
                                 f"{value.dtype}; expected uint8 (T, H, W, C), C in "
                                 f"{_IMAGE_CHANNELS}")
            if key in existing:
                stored = self[key]
                if value.ndim != stored.ndim:
                    raise ValueError(f"{where}: key {key!r} has {value.ndim} dims {value.shape}; "
                                     f"the store has {stored.ndim} dims {stored.shape}")
                if value.shape[1:] != stored.shape[1:]:
                    raise ValueError(f"{where}: key {key!r} trailing shape {value.shape[1:]} != "
                                     f"stored {stored.shape[1:]}")
                if value.dtype != stored.dtype:
                    raise ValueError(f"{where}: key {key!r} dtype {value.dtype} != stored "
                                     f"{stored.dtype}")
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                bad = np.argwhere(~np.isfinite(value))[0]
                raise ValueError(f"{where}: key {key!r} has a non-finite value "
                                 f"{value[tuple(bad)]} at index {tuple(int(b) for b in bad)}")
        if len(set(lengths.values())) != 1:
            raise ValueError(f"{where}: keys have different lengths {lengths}")
        if next(iter(lengths.values())) == 0:
            raise ValueError(f"{where}: empty episode (length 0)")
        return arrays

    # ------------------------------------------------------------------ checks on open
    def _load_and_check(self) -> None:
        path = self._path
        if "meta" not in self._root or "episode_ends" not in self._root["meta"]:
            raise KeyError(f"{path}: missing meta/episode_ends (not a replay buffer store)")
        ends_arr = self._root["meta/episode_ends"]
        if ends_arr.ndim != 1:
            raise ValueError(f"{path}: meta/episode_ends must be 1-D, got shape {ends_arr.shape}")
        if ends_arr.dtype.kind not in "iu":
            raise ValueError(f"{path}: meta/episode_ends must be integer, got {ends_arr.dtype}")
        ends = np.asarray(ends_arr[:], dtype=np.int64)
        n_pending = 0
        while ends.size and ends[-1] == _ENDS_FILL:  # resized but never written: interrupted
            ends, n_pending = ends[:-1], n_pending + 1
        if ends.size and (ends[0] <= 0 or np.any(np.diff(ends) <= 0)):
            bad = 0 if ends[0] <= 0 else int(np.argmax(np.diff(ends) <= 0)) + 1
            raise ValueError(f"{path}: meta/episode_ends must be positive and strictly increasing;"
                             f" entry {bad} is {int(ends[bad])} after "
                             f"{int(ends[bad - 1]) if bad else 0}")
        n_steps = int(ends[-1]) if ends.size else 0
        data = self._root["data"] if "data" in self._root else None
        keys = sorted(data.array_keys()) if data is not None else []
        longer = []
        for key in keys:
            arr = data[key]
            if arr.ndim == 0:
                raise ValueError(f"{path}: data/{key} is 0-dimensional; expected (T, ...)")
            if arr.shape[0] < n_steps:
                raise ValueError(f"{path}: data/{key} has length {arr.shape[0]} but "
                                 f"meta/episode_ends[-1] = {n_steps} (out of range)")
            if arr.shape[0] > n_steps:
                longer.append(key)
        if longer or n_pending:
            logger.warning("%s: interrupted append detected (data longer than episode_ends[-1]=%d"
                           " for %s, %d unwritten episode_ends slot(s)); %s", path, n_steps,
                           longer, n_pending,
                           "truncating the tail" if self._mode == "a" else "ignoring the tail")
            if self._mode == "a":
                for key in longer:
                    arr = data[key]
                    arr.resize((n_steps, *arr.shape[1:]))
                if n_pending:
                    ends_arr.resize((ends.size,))
        self._ends = ends


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def _init_store(path: Path, attrs: Mapping[str, Any] | None) -> None:
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_group("data")
    root.create_group("meta").create_array(
        "episode_ends", shape=(0,), chunks=(_ENDS_CHUNK,), dtype="int64", fill_value=_ENDS_FILL,
        compressors=_compressor())
    if attrs:
        root.attrs.update(dict(attrs))


def _move_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename the finished ``tmp`` store to ``path``; an existing ``path`` is replaced only if
    ``overwrite`` (moved aside first, deleted after the rename)."""
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{path}: a file or store already exists (pass overwrite=True)")
    replace_path(tmp, path)
