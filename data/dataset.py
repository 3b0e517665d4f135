"""Fixed-length training windows over a :class:`ReplayBuffer`, padded as in Diffusion Policy.

Time convention (Diffusion Policy / LeRobot): a sample is a window of ``horizon`` (H) consecutive
steps of one episode. Index 0 is the oldest observation, index To-1 (``n_obs_steps - 1``) is "now";
the observations are the first To steps of the window and the action chunk is all H steps::

    window index   0   1 ... To-1 ... H-1
    obs            o   o ...  o            (To steps, To-1 = now)
    action         a   a ...  a   ...  a   (H steps; a policy executes a[To-1 : To-1+Ta])

Padding: each episode is extended by repeating its first frame ``n_obs_steps - 1`` times before and
its last frame ``n_action_steps - 1`` times after; every window lying inside the padded episode is
a sample, so an episode of length L gives ``L - H + To + Ta - 1`` windows (none if that is <= 0).

Split: whole episodes are held out for validation. With ``val_fraction > 0``,
``n_val = clip(round(E * val_fraction), 1, E - 1)`` episodes are drawn without replacement by
``np.random.default_rng(seed)``; the same seed gives the same split, and ``"train"``/``"val"`` are
disjoint and together cover all E episodes (``"all"`` uses every episode). ``filter_key`` first
restricts the store to one of its named episode lists (``attrs["filter_keys"]``: robomimic's
``mask/train``, ``mask/valid``, ... as imported by ``import_robomimic``); the split then applies
within it (``filter_key="valid", split="all"`` is robomimic's validation set).

Memory: the used keys of the used episodes are read from zarr into numpy once, at construction
(random access into compressed zarr chunks per item is far too slow, Diffusion Policy does the same).
The cost is ``sum over keys of n_steps * prod(trailing shape) * itemsize`` bytes; images stay uint8
(50 episodes x 200 steps of 84x84x3 pixels ~ 212 MB). DataLoader workers started by fork share it.
With ``in_memory=False`` nothing is loaded up front: windows are read from the zarr chunks through a
bounded LRU cache of ``cache_mb`` MiB (``ttfkit.data.chunk_cache``), for stores larger than memory;
the items are identical to the in-memory ones.

Item layout: ``{"obs": {key: float32 Tensor (To, ...)}, "action": float32 Tensor (H, Da)}``; keys
stored as 4-D (T, H, W, C) arrays are images and come as float32 (To, C, H, W): uint8 images scaled
by 1/255 to [0, 1], float images (Diffusion Policy's PushT ``img``, robomimic depth) as stored, left
to the normaliser's per-channel statistics. Default collation gives
``{"obs": {key: (B, To, ...)}, "action": (B, H, Da)}``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ttfkit.data.replay_buffer import ReplayBuffer

__all__ = ["SequenceDataset"]

logger = logging.getLogger(__name__)

_SPLITS = ("train", "val", "all")


class SequenceDataset(Dataset):
    """Padded H-step windows of a replay buffer (see the module docstring for the conventions).

    Args:
        buffer_or_path: a :class:`ReplayBuffer` or the path of a store (opened read-only).
        horizon: H, steps per window (action chunk length).
        n_obs_steps: To, observation steps at the start of the window (index To-1 is "now").
        n_action_steps: Ta, actions a policy executes per chunk; sets the padding after episodes.
        obs_keys: observation keys returned under ``"obs"``.
        action_key: key returned as ``"action"``.
        split: ``"train"``, ``"val"`` or ``"all"``.
        val_fraction: fraction of episodes held out for ``"val"`` (0 = none), in [0, 1).
        seed: seed of the episode-level split.
        in_memory: load the used keys into memory at construction (default); False streams them.
        cache_mb: chunk-cache budget in MiB when streaming (per process; split among DataLoader workers).
        filter_key: use only the episodes of the store's named list ``attrs["filter_keys"][name]``.
    """

    def __init__(self, buffer_or_path: ReplayBuffer | str | os.PathLike, horizon: int = 16,
                 n_obs_steps: int = 2, n_action_steps: int = 8,
                 obs_keys: Sequence[str] = ("agent_pos", "environment_state"),
                 action_key: str = "action", split: str = "train", val_fraction: float = 0.0,
                 seed: int = 0, in_memory: bool = True, cache_mb: float = 256.0,
                 filter_key: str | None = None) -> None:
        if isinstance(obs_keys, str):
            raise TypeError(f"obs_keys must be a sequence of keys, got the string {obs_keys!r}")
        _check_config(horizon, n_obs_steps, n_action_steps, split, val_fraction)
        buffer = (buffer_or_path if isinstance(buffer_or_path, ReplayBuffer)
                  else ReplayBuffer.open(buffer_or_path, mode="r"))
        self.horizon = horizon
        self.n_obs_steps = n_obs_steps
        self.n_action_steps = n_action_steps
        self.obs_keys = tuple(obs_keys)
        self.action_key = action_key
        self.split = split
        self.path = buffer.path

        if buffer.n_episodes == 0:
            raise ValueError(f"{buffer.path}: the store has no episodes")
        for key in (*self.obs_keys, action_key):
            buffer[key]  # KeyError naming the path and the key if it is unknown
        act_shape = buffer[action_key].shape
        if len(act_shape) != 2:
            raise ValueError(f"{buffer.path}: action key {action_key!r} has shape {act_shape}; "
                             f"expected (T, Da)")
        self.image_keys = tuple(k for k in self.obs_keys if buffer[k].ndim == 4)
        self._scaled_keys = frozenset(k for k in self.image_keys if buffer[k].dtype == np.uint8)

        pool = _filtered_episodes(buffer, filter_key)  # (E',) episode indices
        val = _val_mask(pool.size, val_fraction, seed)
        chosen = {"train": ~val, "val": val, "all": np.ones_like(val)}[split]
        self.episode_indices = pool[chosen]
        if self.episode_indices.size == 0:
            raise ValueError(f"{buffer.path}: split {split!r} is empty "
                             f"({buffer.n_episodes} episodes, {val_fraction=})")

        lengths = buffer.episode_lengths[self.episode_indices]
        if in_memory:
            self._arrays = _load_episodes(buffer, (*self.obs_keys, action_key), self.episode_indices)
        else:
            from ttfkit.data.chunk_cache import StreamingArrays

            self._arrays = StreamingArrays(buffer.path, (*self.obs_keys, action_key), buffer.episode_ends,
                                           self.episode_indices, cache_mb)
        self._starts, self._ep_begin, self._ep_last = _window_index(
            lengths, horizon, n_obs_steps - 1, n_action_steps - 1)
        if self._starts.size == 0:
            raise ValueError(f"{buffer.path}: no window of horizon {horizon} fits split {split!r}"
                             f" (episode lengths {lengths.min()}..{lengths.max()})")
        short = int(np.sum(lengths - horizon + n_obs_steps + n_action_steps - 1 <= 0))
        if short:
            logger.warning("%s: %d episode(s) too short for horizon %d give no window",
                           buffer.path, short, horizon)
        self._offsets = np.arange(horizon, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._starts.shape[0])

    def window_indices(self, idx: int) -> np.ndarray:
        """Rows of the cached arrays that sample ``idx`` reads, int64 (H,), padding included."""
        t = self._starts[idx] + self._offsets
        return np.clip(t, self._ep_begin[idx], self._ep_last[idx])

    def __getitem__(self, idx: int) -> dict:
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} windows")
        rows = self.window_indices(idx)  # (H,)
        obs_rows = rows[: self.n_obs_steps]  # (To,)
        # Conversions run in numpy: single-threaded and cheap, whereas small torch ops in the main
        # process contend for intra-op threads (measured 100x slower on a loaded 2-core machine).
        obs = {}
        for key in self.obs_keys:
            x = self._arrays[key][obs_rows]  # (To, ...), a copy
            if key in self.image_keys:
                x = x.transpose(0, 3, 1, 2).astype(np.float32)  # (To, C, H, W)
                if key in self._scaled_keys:
                    x /= 255.0  # uint8 -> [0, 1]; float images stay as stored
            obs[key] = torch.from_numpy(x.astype(np.float32, copy=False))
        action = self._arrays[self.action_key][rows].astype(np.float32, copy=False)  # (H, Da)
        return {"obs": obs, "action": torch.from_numpy(action)}

    def __repr__(self) -> str:
        return (f"SequenceDataset({str(self.path)!r}, split={self.split!r}, "
                f"episodes={self.episode_indices.size}, windows={len(self)}, H={self.horizon}, "
                f"To={self.n_obs_steps}, Ta={self.n_action_steps}, obs_keys={self.obs_keys})")


def _check_config(horizon: int, n_obs_steps: int, n_action_steps: int, split: str,
                  val_fraction: float) -> None:
    if n_obs_steps < 1:
        raise ValueError(f"n_obs_steps must be >= 1, got {n_obs_steps=}")
    if n_action_steps < 1:
        raise ValueError(f"n_action_steps must be >= 1, got {n_action_steps=}")
    if horizon < n_obs_steps:
        raise ValueError(f"horizon must be >= n_obs_steps, got {horizon=}, {n_obs_steps=}")
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split=}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction=}")


def _filtered_episodes(buffer: ReplayBuffer, filter_key: str | None) -> np.ndarray:
    """Episode indices (int64, ascending) of ``filter_key``'s list, or all episodes."""
    if filter_key is None:
        return np.arange(buffer.n_episodes, dtype=np.int64)
    lists = dict(buffer.attrs).get("filter_keys") or {}
    if filter_key not in lists:
        raise KeyError(f"{buffer.path}: no filter key {filter_key!r}; the store has {sorted(lists)}")
    episodes = np.unique(np.asarray(lists[filter_key], dtype=np.int64))
    if episodes.size and (episodes[0] < 0 or episodes[-1] >= buffer.n_episodes):
        raise ValueError(f"{buffer.path}: filter key {filter_key!r} lists episodes outside "
                         f"0..{buffer.n_episodes - 1}")
    return episodes


def _val_mask(n_episodes: int, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean (E,) mask of validation episodes (module docstring gives the rule)."""
    mask = np.zeros(n_episodes, dtype=bool)
    if val_fraction <= 0 or n_episodes < 2:
        return mask
    n_val = min(max(1, round(n_episodes * val_fraction)), n_episodes - 1)
    mask[np.random.default_rng(seed).choice(n_episodes, size=n_val, replace=False)] = True
    return mask


def _load_episodes(buffer: ReplayBuffer, keys: Sequence[str], episodes: np.ndarray
                   ) -> dict[str, np.ndarray]:
    """Concatenate the chosen episodes of every key into numpy, merging contiguous episodes into
    one zarr read."""
    ends = buffer.episode_ends
    begins = np.concatenate([[0], ends[:-1]])
    runs: list[list[int]] = []  # [begin, end) in buffer rows
    for e in episodes:
        if runs and runs[-1][1] == begins[e]:
            runs[-1][1] = int(ends[e])
        else:
            runs.append([int(begins[e]), int(ends[e])])
    out = {}
    for key in dict.fromkeys(keys):
        arr = buffer[key]
        if len(runs) == 1:
            out[key] = np.ascontiguousarray(arr[runs[0][0]: runs[0][1]])
        else:
            out[key] = np.concatenate([arr[b:e] for b, e in runs], axis=0)
    return out


def _window_index(lengths: np.ndarray, horizon: int, pad_before: int, pad_after: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every window: first row (may precede its episode), episode's first row, episode's last
    row, each int64 (N,), in the concatenated cached arrays. Rows are clipped to the episode."""
    starts, begin, last = [], [], []
    offset = 0
    for length in lengths.tolist():
        first = np.arange(-pad_before, length - horizon + pad_after + 1, dtype=np.int64)
        starts.append(first + offset)
        begin.append(np.full(first.shape, offset, dtype=np.int64))
        last.append(np.full(first.shape, offset + length - 1, dtype=np.int64))
        offset += length
    return np.concatenate(starts), np.concatenate(begin), np.concatenate(last)
