"""Streaming reads of training windows from zarr chunks through a bounded, least-recently-used cache.

``SequenceDataset(..., in_memory=False, cache_mb=N)`` uses :class:`StreamingArrays` in place of the
in-memory copy of the used keys, for stores larger than memory (1,000 episodes x 500 frames x 3
cameras of 84x84 pixels are ~30 GB). A read of window rows decodes only the zarr chunks those rows
fall in (chunks run along time, ~2 MB each in ttfkit stores) and keeps decoded chunks in an LRU
cache of at most ``cache_mb`` MiB (2^20 bytes) per process, shared by all keys.

Rows. ``StreamingArrays`` is indexed like the in-memory arrays: ``arrays[key][rows]`` with rows of the
*concatenation of the chosen episodes* (int64 (n,), any order, repeats allowed), which it maps to
store rows. The result is a new numpy array ``(n, *trailing)`` equal to what the in-memory copy gives.

Memory bound. The cache evicts least recently used chunks until its decoded bytes are at most
``cache_mb`` MiB, except that the chunks of the read in progress are kept even when they alone
exceed the budget (so the bound is ``max(cache_mb, chunks of one window)``). Inside a DataLoader
worker the budget is ``cache_mb / num_workers``, so the workers together stay within ``cache_mb``
(the main process reads nothing while workers run). Resident memory is that plus a constant
(interpreter, torch, zarr, one batch); ``tests/data/test_streaming.py`` measures it.

Processes. zarr handles are opened lazily in each process (after a fork the parent's handles, and
zarr's I/O thread, are not reused), so the object pickles and forks freely.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

__all__ = ["StreamingArrays", "ChunkCache"]

logger = logging.getLogger(__name__)

_MIB = 1 << 20


class ChunkCache:
    """LRU map ``(key, chunk index) -> decoded chunk`` holding at most ``budget`` bytes (see the
    module docstring for the exception). Counts ``hits`` and ``misses``; ``nbytes`` is what it holds."""

    def __init__(self, budget: int) -> None:
        if budget <= 0:
            raise ValueError(f"chunk cache budget must be > 0 bytes, got {budget}")
        self.budget = int(budget)
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._chunks: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()

    def get(self, key: str, index: int) -> np.ndarray | None:
        chunk = self._chunks.get((key, index))
        if chunk is None:
            self.misses += 1
            return None
        self.hits += 1
        self._chunks.move_to_end((key, index))
        return chunk

    def put(self, key: str, index: int, chunk: np.ndarray, keep: Sequence[tuple[str, int]] = ()) -> None:
        """Insert a chunk, then evict least recently used chunks not in ``keep`` until within budget."""
        self._chunks[(key, index)] = chunk
        self.nbytes += chunk.nbytes
        protected = set(keep) | {(key, index)}
        for name in list(self._chunks):
            if self.nbytes <= self.budget:
                break
            if name not in protected:
                self.nbytes -= self._chunks.pop(name).nbytes

    def clear(self) -> None:
        self._chunks.clear()
        self.nbytes = 0


class StreamingArrays:
    """``{key: rows -> np.ndarray}`` over a store's chosen episodes, read through a :class:`ChunkCache`.

    Args:
        path: the zarr store (``ttfkit.data.ReplayBuffer`` layout), reopened read-only per process.
        keys: data keys that will be read.
        episode_ends: the store's ``meta/episode_ends`` (int64 (E,)).
        episodes: the chosen episode indices, in the order their rows are concatenated (int64).
        cache_mb: cache budget in MiB per process (divided among DataLoader workers).
    """

    def __init__(self, path: str | os.PathLike, keys: Sequence[str], episode_ends: np.ndarray,
                 episodes: np.ndarray, cache_mb: float) -> None:
        if not cache_mb > 0:
            raise ValueError(f"cache_mb must be > 0, got {cache_mb=}")
        self.path = str(path)
        self.keys = tuple(dict.fromkeys(keys))
        self.cache_mb = float(cache_mb)
        ends = np.asarray(episode_ends, dtype=np.int64)
        begins = np.concatenate([[0], ends[:-1]])
        episodes = np.asarray(episodes, dtype=np.int64)
        lengths = ends[episodes] - begins[episodes]
        self._concat_begin = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)  # (E',)
        self._store_begin = begins[episodes]  # (E',)
        self._n_rows = int(lengths.sum())
        self._pid: int | None = None
        self._arrays: dict = {}
        self._cache: ChunkCache | None = None

    @property
    def cache(self) -> ChunkCache:
        """This process's cache (created on first use)."""
        self._open()
        return self._cache

    def __getitem__(self, key: str) -> _KeyReader:
        if key not in self.keys:
            raise KeyError(f"{self.path}: key {key!r} is not streamed; streamed keys: {list(self.keys)}")
        return _KeyReader(self, key)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_pid=None, _arrays={}, _cache=None)  # handles and cache stay in their process
        return state

    def read(self, key: str, rows: np.ndarray) -> np.ndarray:
        """Rows (int64 (n,), concatenated-episode coordinates) of ``key`` -> new array (n, ...)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self._n_rows):
            raise IndexError(f"{self.path}: rows {rows.min()}..{rows.max()} outside 0..{self._n_rows - 1}")
        self._open()
        episode = np.searchsorted(self._concat_begin, rows, side="right") - 1
        store_rows = rows - self._concat_begin[episode] + self._store_begin[episode]  # (n,)
        arr = self._arrays[key]
        length = arr.chunks[0]
        chunk_ids = store_rows // length
        needed = [(key, int(c)) for c in np.unique(chunk_ids)]
        out = np.empty((rows.size, *arr.shape[1:]), dtype=arr.dtype)
        for name in needed:
            c = name[1]
            chunk = self._cache.get(key, c)
            if chunk is None:
                chunk = arr[c * length: min((c + 1) * length, arr.shape[0])]  # decodes one chunk
                self._cache.put(key, c, chunk, keep=needed)
            sel = chunk_ids == c
            out[sel] = chunk[store_rows[sel] - c * length]
        return out

    def _open(self) -> None:
        if self._pid == os.getpid():
            return
        from ttfkit.data.replay_buffer import ReplayBuffer

        buffer = ReplayBuffer.open(self.path, mode="r")
        self._arrays = {k: buffer[k] for k in self.keys}
        budget = self.cache_mb * _MIB
        try:
            from torch.utils.data import get_worker_info

            info = get_worker_info()
        except ImportError:  # pragma: no cover - torch is a core dependency
            info = None
        if info is not None:
            budget /= info.num_workers
        self._cache = ChunkCache(int(budget))
        self._pid = os.getpid()
        logger.debug("%s: streaming %s with a %.1f MiB chunk cache in process %d", self.path,
                     list(self.keys), budget / _MIB, self._pid)


class _KeyReader:
    """``reader[rows]`` -> ``StreamingArrays.read(key, rows)``; mirrors numpy fancy indexing."""

    __slots__ = ("_arrays", "_key")

    def __init__(self, arrays: StreamingArrays, key: str) -> None:
        self._arrays, self._key = arrays, key

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return self._arrays.read(self._key, rows)
