"""Zarr-backed episodic store in Diffusion Policy's layout.

Layout (identical to Diffusion Policy's ``ReplayBuffer``, so either side opens the other's stores)::

    <path>/                  root group, attrs = free-form JSON metadata (env id, expert, seeds, ...)
        data/<key>           one array per key, shape (T, ...), all episodes concatenated on axis 0
        meta/episode_ends    int64 (E,), cumulative end index of every episode (exclusive)
        meta/.zattrs         {"ttfkit": {"kind": "replay-buffer", ...}}: the marker that lets ttfkit
                             replace the store (``overwrite``); see ``ttfkit.data.atomic``
        .ttfkit.lock         the writer lock (``filelock``), holder's pid inside

ttfkit writes ``zarr_format=2`` (Diffusion Policy's code uses the zarr 2 API), compresses every array
with Blosc/zstd, checksums every compressed chunk (CRC32, ``_codecs``) and chunks along time only,
about ``_CHUNK_BYTES`` per chunk (the chunk length follows from each key's trailing shape and dtype). Every chunk is written, also one that holds only
the fill value, so a chunk file that is absent is always a loss. Images are (T, H, W, C), uint8 or
float (kept as stored: Diffusion Policy's PushT ``img`` is float32 in [0, 255], robomimic depth float).

One writer at a time: ``"a"`` mode takes an exclusive lock on the store for the life of the object
(:meth:`close` or a ``with`` block releases it); a second writer gets ``StoreLockedError`` naming
the holder's pid. Readers take no lock.

Opening checks the metadata JSON files, that every chunk the metadata implies below
``episode_ends[-1]`` is present (a listing, not a read), and ``episode_ends`` itself; each problem is
an error naming the store, the array and the chunk index. :meth:`verify` also decodes every chunk.

Crash safety: ``add_episode`` validates the whole episode, records the append it is about to make in
``meta/.zattrs`` (``ttfkit_append``: steps and episodes before it, its length), appends the data
arrays, extends ``meta/episode_ends`` last and then clears the record. Every chunk file is replaced
atomically by zarr's LocalStore, so an append interrupted at any point leaves data arrays longer than
``episode_ends[-1]`` and/or one trailing ``episode_ends`` slot holding the array's fill value (int64
max for ttfkit, 0 for Diffusion Policy) when the crash hit between the resize and the write of
``episode_ends``. In ``"r"`` mode the tail is ignored (``n_steps`` and every read stop at
``episode_ends[-1]``; ``buffer[key]`` still covers the full zarr array, so slice it with
``[:n_steps]``). In ``"a"`` mode the tail is truncated before the next append only when it is
provably an interrupted append: ttfkit's record matches it, or (a store without ttfkit's marker, as
Diffusion Policy writes) one unwritten ``episode_ends`` slot follows at least one episode and every
longer array has the same length. Anything else is refused and nothing is deleted.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import shutil
import socket
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import filelock
import numcodecs
import numpy as np
import zarr

from ttfkit.data.atomic import artefact_kind, check_replaceable, replace_path
from ttfkit.data.codecs import check_codecs

__all__ = ["ReplayBuffer", "StoreLockedError"]

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 2 * 1024 * 1024  # target uncompressed chunk size, as Diffusion Policy's (~2 MB)
_ENDS_CHUNK = 1 << 16  # episode_ends entries per chunk
_ENDS_FILL = np.iinfo(np.int64).max  # reserved: marks an episode_ends slot resized but not written
_IMAGE_CHANNELS = (1, 3, 4)
_KIND = "replay-buffer"  # artefact kind in meta/.zattrs["ttfkit"]
_JOURNAL = "ttfkit_append"  # meta/.zattrs key present while an append is in flight
_LOCK = ".ttfkit.lock"
_WRITE_ALL_CHUNKS = {"array.write_empty_chunks": True}  # an absent chunk file is always a loss
_METADATA_FILES = (".zgroup", ".zarray", ".zattrs", "zarr.json")


class StoreLockedError(RuntimeError):
    """Another process holds the store's writer lock."""


def _compressor() -> numcodecs.Blosc:
    return numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE)


def _codecs() -> dict[str, Any]:
    """zarr 2 codecs of every array ttfkit writes: Blosc/zstd as the (only) filter and a CRC32 of the
    compressed bytes as the compressor, so a corrupt or truncated chunk fails its checksum before
    Blosc reads it (Blosc 1 cannot tell a truncated buffer and may decode garbage). Diffusion
    Policy's reader (zarr 2) decodes both."""
    return {"filters": [_compressor()], "compressors": numcodecs.CRC32()}


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

    def __init__(self, root: zarr.Group, path: Path, mode: str,
                 lock: filelock.BaseFileLock | None = None, files: set[str] | None = None) -> None:
        self._root = root
        self._path = path
        self._mode = mode
        self._lock = lock
        self._ends = np.zeros(0, dtype=np.int64)
        self._load_and_check(_list_files(path) if files is None else files)

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, path: str | os.PathLike, attrs: Mapping[str, Any] | None = None,
               overwrite: bool = False) -> ReplayBuffer:
        """Create an empty store at ``path`` and return it opened in ``"a"`` mode.

        The empty store is written to a temporary sibling and renamed into place, so ``path``
        never holds a half-written store, and two processes creating one path cannot both succeed.
        Raises ``FileExistsError`` if ``path`` exists and ``overwrite`` is False; with
        ``overwrite=True`` only a ttfkit store nobody is writing is replaced (``ttfkit.data.atomic``).
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
        if overwrite:
            check_replaceable(path, _KIND)
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
        (``"a"``, takes the writer lock). Validates the metadata, the presence of every chunk and
        ``meta/episode_ends`` against the data arrays; see the module docstring for how an
        interrupted append is handled."""
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such zarr store")
        if not path.is_dir():
            raise ValueError(f"{path}: not a zarr store (a file, not a directory)")
        files = _list_files(path)
        _check_metadata_json(path, files)
        check_codecs(path, files)  # imagecodecs' (Diffusion Policy's Jpeg2k) or a clear error
        _check_array_metadata_present(path, files)
        lock = _acquire_lock(path) if mode == "a" else None
        try:
            try:
                root = zarr.open_group(str(path), mode="r" if mode == "r" else "r+")
            except (FileNotFoundError, zarr.errors.GroupNotFoundError) as e:
                raise ValueError(f"{path}: not a zarr group ({e})") from e
            return cls(root, path, mode, lock, files)
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    def close(self) -> None:
        """Release the writer lock (``"a"`` mode); the object must not append afterwards."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
            self._mode = "r"

    def __enter__(self) -> ReplayBuffer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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

    def __getitem__(self, key: str) -> _Array:
        """The array ``data/<key>`` (T', ...): the zarr array, whose reads raise ``ValueError``
        naming the store, key and chunks when a chunk cannot be decoded. T' may exceed ``n_steps``
        after an interrupted append in ``"r"`` mode; slice with ``[:n_steps]``."""
        keys = self.keys()
        if key not in keys:
            raise KeyError(f"{self._path}: unknown key {key!r} in data/; available: {keys}")
        return _Array(self._root["data"][key], self._path)

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
        Keys are non-empty strings without ``/`` or a leading ``.``. Floating-point values must be
        finite; 4-D arrays are images (T, H, W, C), uint8 or float."""
        if self._mode != "a":
            raise PermissionError(f"{self._path}: opened read-only (mode='r'); open with mode='a'")
        arrays = self._validate_episode(episode)
        length = next(iter(arrays.values())).shape[0]
        meta = self._root["meta"]
        meta.attrs[_JOURNAL] = {"n_steps": self.n_steps, "n_episodes": self.n_episodes,
                                "length": int(length)}
        with zarr.config.set(_WRITE_ALL_CHUNKS):
            data = self._root.require_group("data")
            for key, value in arrays.items():
                with _naming_errors(self._path, f"data/{key}"):
                    if key in data:
                        data[key].append(value, axis=0)
                    else:
                        trailing = value.shape[1:]
                        arr = data.create_array(
                            key, shape=(0, *trailing), dtype=value.dtype,
                            chunks=(_chunk_length(trailing, value.dtype), *trailing),
                            **_codecs())
                        arr.append(value, axis=0)
            new_end = self.n_steps + length
            with _naming_errors(self._path, "meta/episode_ends"):
                meta["episode_ends"].append(np.array([new_end], dtype=np.int64))  # last
        del meta.attrs[_JOURNAL]
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
        for key in episode:
            if not isinstance(key, str) or not key or "/" in key or "\\" in key or key[0] == ".":
                raise ValueError(f"{where}: invalid key {key!r}: keys are non-empty strings without "
                                 f"'/' or '\\' and not starting with '.'")
        arrays = {k: np.asarray(v) for k, v in episode.items()}
        lengths = {k: (v.shape[0] if v.ndim else None) for k, v in arrays.items()}
        for key, value in arrays.items():
            if value.ndim == 0:
                raise ValueError(f"{where}: key {key!r} is a scalar; expected (T, ...)")
            if value.dtype.kind not in "biuf":
                raise ValueError(f"{where}: key {key!r} has unsupported dtype {value.dtype}")
            if value.ndim == 4 and ((value.dtype != np.uint8 and value.dtype.kind != "f")
                                    or value.shape[-1] not in _IMAGE_CHANNELS):
                raise ValueError(f"{where}: key {key!r} looks like images {value.shape} "
                                 f"{value.dtype}; expected float or uint8 (T, H, W, C), C in "
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

    # ------------------------------------------------------------------ checks
    @classmethod
    def verify(cls, path: str | os.PathLike) -> list[str]:
        """Every problem of the store at ``path``, one line each (empty: the store is sound).

        Runs the checks of :meth:`open`, then decodes every chunk of ``meta/episode_ends`` and of
        every data array below ``n_steps`` and reports each one that fails by array and chunk
        index, and non-finite values in floating-point arrays. Reads only; takes no lock.
        """
        try:
            buf = cls.open(path, mode="r")
        except (OSError, ValueError, KeyError) as e:
            return [str(e).strip("'\"")]
        problems = []
        files = _list_files(buf.path)
        for k in buf.keys():
            missing = _missing_chunks(files, buf._root["data"][k], buf.n_steps)
            if missing:
                problems.append(_missing_message(buf.path, f"data/{k}", buf._root["data"][k],
                                                 missing) + " (reads as the fill value)")
        arrays = [("meta/episode_ends", buf._root["meta/episode_ends"], buf.n_episodes)]
        arrays += [(f"data/{k}", buf._root["data"][k], buf.n_steps) for k in buf.keys()]
        for name, arr, n_rows in arrays:
            step = arr.chunks[0]
            for c in range(math.ceil(n_rows / step) if step else 0):
                try:
                    x = arr[c * step: min((c + 1) * step, n_rows)]
                except Exception as e:  # noqa: BLE001 - any decode failure is reported
                    problems.append(f"{buf.path}: {name}: chunk {c} (rows {c * step}.."
                                    f"{min((c + 1) * step, n_rows) - 1}) cannot be decoded: "
                                    f"{type(e).__name__}: {e}")
                    continue
                if x.dtype.kind == "f" and not np.isfinite(x).all():
                    bad = np.argwhere(~np.isfinite(x))[0]
                    problems.append(f"{buf.path}: {name}: chunk {c} holds a non-finite value at "
                                    f"row {c * step + int(bad[0])}")
        return problems

    def _load_and_check(self, files: set[str]) -> None:
        path = self._path
        if "meta" not in self._root or "episode_ends" not in self._root["meta"]:
            raise KeyError(f"{path}: missing meta/episode_ends (not a replay buffer store)")
        ends_arr = self._root["meta/episode_ends"]
        if ends_arr.ndim != 1:
            raise ValueError(f"{path}: meta/episode_ends must be 1-D, got shape {ends_arr.shape}")
        if ends_arr.dtype.kind not in "iu":
            raise ValueError(f"{path}: meta/episode_ends must be integer, got {ends_arr.dtype}")
        fill = ends_arr.fill_value
        raw = _read(ends_arr, slice(None), path, "meta/episode_ends")
        ends = np.asarray(raw, dtype=np.int64)
        n_pending = int(ends.size > 0 and fill is not None and int(ends[-1]) == int(fill)
                        and int(fill) in (0, _ENDS_FILL))  # resized, never written: interrupted
        ends = ends[:ends.size - n_pending]
        missing = _missing_chunks(files, ends_arr, ends.size)
        if missing:  # never legitimately absent: episode ends are never the fill value
            raise ValueError(_missing_message(path, "meta/episode_ends", ends_arr, missing)
                             + "; the store is damaged (restore it from a copy)")
        ours = artefact_kind(path) == _KIND
        if ends.size and (ends[0] <= 0 or np.any(np.diff(ends) <= 0)):
            bad = 0 if ends[0] <= 0 else int(np.argmax(np.diff(ends) <= 0)) + 1
            hint = (" (the array's fill value: never written)"
                    if fill is not None and int(ends[bad]) == int(fill) else "")
            raise ValueError(f"{path}: meta/episode_ends must be positive and strictly increasing;"
                             f" entry {bad} is {int(ends[bad])}{hint} after "
                             f"{int(ends[bad - 1]) if bad else 0}")
        n_steps = int(ends[-1]) if ends.size else 0
        data = self._root["data"] if "data" in self._root else None
        keys = sorted(data.array_keys()) if data is not None else []
        longer = {}
        for key in keys:
            arr = data[key]
            if arr.ndim == 0:
                raise ValueError(f"{path}: data/{key} is 0-dimensional; expected (T, ...)")
            if arr.shape[0] < n_steps:
                raise ValueError(f"{path}: data/{key} has length {arr.shape[0]} but "
                                 f"meta/episode_ends[-1] = {n_steps} (out of range)")
            missing = _missing_chunks(files, arr, n_steps)
            if missing and ours:  # ttfkit writes every chunk
                raise ValueError(_missing_message(path, f"data/{key}", arr, missing)
                                 + "; the store is damaged (restore it from a copy)")
            if missing:
                logger.warning("%s; it reads as the fill value %r. Diffusion Policy (zarr 2) writes "
                               "every chunk, so there it is a loss; zarr 3 omits chunks holding only "
                               "the fill value", _missing_message(path, f"data/{key}", arr, missing),
                               arr.fill_value)
            if arr.shape[0] > n_steps:
                longer[key] = int(arr.shape[0])
        self._ends = ends
        journal = self._root["meta"].attrs.get(_JOURNAL)
        if not longer and not n_pending:
            if journal is not None and self._mode == "a":  # completed, or nothing written yet
                del self._root["meta"].attrs[_JOURNAL]
            return
        logger.warning("%s: interrupted append detected (data longer than episode_ends[-1]=%d"
                       " for %s, %d unwritten episode_ends slot(s)); %s", path, n_steps,
                       sorted(longer), n_pending,
                       "truncating the tail" if self._mode == "a" else "ignoring the tail")
        if self._mode == "a":
            self._check_tail_is_interrupted_append(longer, n_pending, journal)
            with zarr.config.set(_WRITE_ALL_CHUNKS):
                for key in longer:
                    arr = data[key]
                    arr.resize((n_steps, *arr.shape[1:]))
                if n_pending:
                    ends_arr.resize((ends.size,))
            if journal is not None:
                del self._root["meta"].attrs[_JOURNAL]

    def _check_tail_is_interrupted_append(self, longer: dict[str, int], n_pending: int,
                                          journal: Any) -> None:
        """Raise unless the tail beyond ``episode_ends[-1]`` is provably an interrupted append."""
        n_steps, n_eps = self.n_steps, self.n_episodes
        if isinstance(journal, dict):
            ok = (journal.get("n_steps") == n_steps and journal.get("n_episodes") == n_eps
                  and all(v <= n_steps + int(journal.get("length", 0)) for v in longer.values()))
            why = f"it does not match the recorded interrupted append {journal}"
        elif artefact_kind(self._path) == _KIND:
            ok, why = False, "ttfkit recorded no interrupted append"
        else:  # Diffusion Policy's order: every data array, then the episode_ends slot
            ok = (n_pending == 1 and n_eps >= 1 and len(longer) == len(self.keys())
                  and len(set(longer.values())) == 1)
            why = "it is not one unwritten episode_ends slot after complete data arrays"
        if not ok:
            raise ValueError(
                f"{self._path}: data beyond meta/episode_ends[-1]={n_steps} ({longer}, {n_pending} "
                f"unwritten episode_ends slot(s)) is not provably an interrupted append ({why}); "
                f"refusing to truncate it. Nothing was changed; run `ttf data verify {self._path}`")


class _Array:
    """A zarr array of a store whose reads name the store, the key and the chunks on failure."""

    def __init__(self, arr: zarr.Array, path: Path):
        self._arr, self._store = arr, path

    def __getitem__(self, selection):
        return _read(self._arr, selection, self._store, self._arr.path)

    def __array__(self, dtype=None, copy=None):
        x = self[...]
        return x if dtype is None else x.astype(dtype)

    def __len__(self) -> int:
        return self._arr.shape[0]

    def __getattr__(self, name: str):
        return getattr(self._arr, name)

    def __repr__(self) -> str:
        return f"<{self._store}: {self._arr.path} {self._arr.shape} {self._arr.dtype}>"


def _read(arr: zarr.Array, selection, store: Path, name: str) -> np.ndarray:
    try:
        return arr[selection]
    except (IndexError, KeyError, TypeError):
        raise
    except Exception as e:  # noqa: BLE001 - codec errors come as RuntimeError, ValueError, ...
        raise ValueError(f"{store}: {name}: cannot decode the chunk(s) read by {selection!r} "
                         f"({type(e).__name__}: {e}); run `ttf data verify {store}`") from e


@contextlib.contextmanager
def _naming_errors(store: Path, name: str) -> Iterator[None]:
    """Re-raise a failed append (full disk, corrupt chunk, ...) naming the store and the array; the
    store keeps its record of the interrupted append, so reopening in "a" mode cleans the tail."""
    try:
        yield
    except OSError as e:
        raise OSError(e.errno, f"{store}: {name}: cannot append ({e})") from e
    except Exception as e:  # noqa: BLE001 - codec errors come as RuntimeError, ValueError, ...
        raise ValueError(f"{store}: {name}: cannot append ({type(e).__name__}: {e}); nothing "
                         f"earlier was changed") from e


def _list_files(path: Path) -> set[str]:
    """Every file under store ``path``, as '/'-separated paths relative to it."""
    out = set()
    for d, _, names in os.walk(path):
        rel = os.path.relpath(d, path)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        out.update(prefix + n for n in names)
    return out


def _check_metadata_json(path: Path, files: set[str]) -> None:
    for rel in sorted(f for f in files if f.rsplit("/", 1)[-1] in _METADATA_FILES):
        try:
            data = json.loads((path / rel).read_bytes())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path / rel}: unreadable zarr metadata ({type(e).__name__}: {e})"
                             ) from e
        if not isinstance(data, dict):
            raise ValueError(f"{path / rel}: zarr metadata must be a JSON object, got "
                             f"{type(data).__name__}")


def _check_array_metadata_present(path: Path, files: set[str]) -> None:
    """A folder under data/ or meta/ that holds files but no zarr metadata lost its ``.zarray``;
    zarr would skip it silently (the key would vanish from ``keys()``)."""
    dirs = {f.rsplit("/", 1)[0] for f in files if "/" in f}
    for d in sorted(dirs):
        parts = d.split("/")
        if len(parts) == 2 and parts[0] in ("data", "meta") and not any(
                f"{d}/{m}" in files for m in (".zarray", ".zgroup", "zarr.json")):
            raise ValueError(f"{path}: {d}/.zarray is missing ({d} holds chunk files but no array "
                             f"metadata); the store is damaged (restore it from a copy)")


def _missing_chunks(files: set[str], arr: zarr.Array, n_rows: int) -> list[tuple[int, str]]:
    """(chunk index along time, file) of every absent chunk file among those holding rows
    [0, n_rows) (a listing, no read)."""
    if n_rows == 0 or 0 in arr.shape[1:]:
        return []
    grid = [range(math.ceil(s / c)) for s, c in zip(arr.shape[1:], arr.chunks[1:])]
    missing = []
    for c0 in range(math.ceil(n_rows / arr.chunks[0])):
        for rest in itertools.product(*grid):
            key = f"{arr.path}/{arr.metadata.encode_chunk_key((c0, *rest))}"
            if key not in files:
                missing.append((c0, key))
                break
    return missing


def _missing_message(path: Path, name: str, arr: zarr.Array, missing: list[tuple[int, str]]
                     ) -> str:
    c0, key = missing[0]
    more = f" (and {len(missing) - 1} more chunk(s))" if len(missing) > 1 else ""
    return (f"{path}: {name}: chunk {c0} (rows {c0 * arr.chunks[0]}.."
            f"{min((c0 + 1) * arr.chunks[0], arr.shape[0]) - 1}) is missing: file {key} is "
            f"absent{more}")


def _acquire_lock(path: Path) -> filelock.BaseFileLock:
    file = path / _LOCK
    lock = filelock.FileLock(file)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        try:
            holder = file.read_text().strip() or "unknown holder"
        except OSError:
            holder = "unknown holder"
        raise StoreLockedError(f"{path}: another process is writing this store ({holder}, lock "
                               f"{file}); wait for it to finish, or stop it") from None
    except OSError as e:
        raise PermissionError(f"{path}: cannot take the writer lock {file}: {e}") from e
    try:
        file.write_text(f"pid {os.getpid()} on {socket.gethostname()}")
    except OSError:
        pass  # the lock is held; the pid is only for the message above
    return lock


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def _init_store(path: Path, attrs: Mapping[str, Any] | None) -> None:
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_group("data")
    meta = root.create_group("meta")
    meta.create_array(
        "episode_ends", shape=(0,), chunks=(_ENDS_CHUNK,), dtype="int64", fill_value=_ENDS_FILL,
        **_codecs())
    meta.attrs["ttfkit"] = {"kind": _KIND}
    if attrs:
        root.attrs.update(dict(attrs))


def _move_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename the finished ``tmp`` store to ``path``. Without ``overwrite`` a single rename that
    fails if ``path`` exists (race-free); with it, an existing ttfkit store that nobody is writing
    is replaced (``ttfkit.data.atomic.replace_path``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        if path.exists() or path.is_symlink():
            raise FileExistsError(f"{path}: a file or store already exists (pass overwrite=True)")
        try:
            os.rename(tmp, path)  # fails if another process created path meanwhile
        except OSError as e:
            if path.exists():
                raise FileExistsError(f"{path}: created by another process meanwhile") from e
            raise
        return
    check_replaceable(path, _KIND)
    lock = _acquire_lock(path) if artefact_kind(path) == _KIND else None
    try:
        replace_path(tmp, path, kind=_KIND)
    finally:
        if lock is not None:
            lock.release()
