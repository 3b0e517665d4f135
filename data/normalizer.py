"""Per-key affine normalisation of observations and actions, fitted from a replay buffer.

Modes (per key, stats over the time axis, one value per feature, broadcast over leading dims):

- ``"minmax"``: ``y = 2 (x - min) / (max - min) - 1`` maps [min, max] to [-1, 1];
- ``"meanstd"``: ``y = (x - mean) / std``;
- ``"image"``: fixed, ``y = 2 x - 1`` maps [0, 1] (the dataset's pixel range) to [-1, 1]. Used for
  ``pixels`` and for every key stored as 4-D (T, H, W, C) uint8 images, whatever mode is asked.

Float images (4-D (T, H, W, C) float keys: Diffusion Policy's PushT ``img`` in [0, 255], robomimic
depth) reach the policy as stored (``SequenceDataset`` scales only uint8 by 1/255), so they get the
asked mode with one statistic per channel over time and pixels, held in the (C, H, W) layout the
dataset yields (the same value at every pixel of a channel).

A constant feature (``max - min`` or ``std`` below ``_EPS``) is mapped to 0 with unit scale
(``y = x - centre``), so nothing divides by zero and ``unnormalize`` stays the exact inverse.

Every transform is ``y = x * scale + offset`` with ``scale``/``offset`` derived from the stats; the
stats, scale, offset and a mode code are registered buffers (they travel in ``state_dict`` and
load into an empty ``Normalizer``). ``to_dict``/``from_dict`` give plain JSON-able lists and
``save``/``load`` a safetensors file.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from ttfkit.data.replay_buffer import ReplayBuffer

__all__ = ["Normalizer"]

logger = logging.getLogger(__name__)

_EPS = 1e-6
_MODES = ("minmax", "meanstd", "image")
_STATS = ("min", "max", "mean", "std")
_FORMAT = "ttfkit.normalizer"
_VERSION = "1"
_IMAGE_KEYS = ("pixels",)


class Normalizer(nn.Module):
    """Per-key normaliser ``y = x * scale + offset`` (module docstring gives the modes).

    Example::

        norm = Normalizer.fit(buffer, ["agent_pos", "action"], mode="minmax")
        a = norm.normalize("action", batch["action"])  # (B, H, Da) in [-1, 1]
        batch_action = norm.unnormalize("action", a)     # exact inverse
    """

    def __init__(self, stats: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """``stats``: ``{key: {"mode": str, "min": ..., "max": ..., "mean": ..., "std": ...}}``
        with array-likes of the feature shape (as :meth:`to_dict` returns)."""
        super().__init__()
        self.stats = nn.ModuleDict()
        for key, entry in (stats or {}).items():
            self._set(key, entry)

    # ------------------------------------------------------------------ construction
    @classmethod
    def fit(cls, buffer: ReplayBuffer | str | os.PathLike, keys: Iterable[str],
            mode: str | Mapping[str, str] = "minmax") -> Normalizer:
        """Fit stats of ``keys`` over every step of ``buffer`` (streamed chunk by chunk).
        ``mode`` is one mode for all keys or ``{key: mode}``."""
        if not isinstance(buffer, ReplayBuffer):
            buffer = ReplayBuffer.open(buffer, mode="r")
        if buffer.n_steps == 0:
            raise ValueError(f"{buffer.path}: cannot fit a normalizer on an empty store")
        keys = list(keys)
        modes = {k: mode for k in keys} if isinstance(mode, str) else dict(mode)
        unknown = sorted(set(modes) - set(keys))
        if unknown:
            raise KeyError(f"mode given for keys {unknown} that are not in keys={keys}")
        stats = {}
        for key in keys:
            arr = buffer[key]
            m = modes.get(key)
            if m is None:
                raise KeyError(f"no mode given for key {key!r} (modes for {sorted(modes)})")
            if arr.ndim == 4 and np.dtype(arr.dtype).kind == "f":  # float images: per channel
                stats[key] = {"mode": m, **_channel_stats(arr, buffer.n_steps)}
            elif key in _IMAGE_KEYS or arr.ndim == 4:
                stats[key] = _image_stats()
            else:
                stats[key] = {"mode": m, **_streamed_stats(arr, buffer.n_steps)}
        return cls(stats)

    @classmethod
    def from_dict(cls, d: Mapping[str, Mapping[str, Any]]) -> Normalizer:
        """Inverse of :meth:`to_dict`."""
        return cls(d)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Normalizer:
        """Load a normaliser written by :meth:`save`."""
        path = Path(path)
        try:
            with safetensors.safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (OSError, safetensors.SafetensorError) as e:
            raise ValueError(f"{path}: not a readable safetensors file ({e})") from e
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a ttfkit normalizer file (metadata {meta})")
        if meta.get("version") != _VERSION:
            raise ValueError(f"{path}: normalizer format version {meta.get('version')!r}, "
                             f"this code reads {_VERSION!r}")
        modes = json.loads(meta["modes"])
        return cls({k: {"mode": m, **{s: tensors[f"{k}/{s}"] for s in _STATS}}
                    for k, m in modes.items()})

    # ------------------------------------------------------------------ use
    def keys(self) -> list[str]:
        return [_unescape(k) for k in self.stats.keys()]

    def __contains__(self, key: str) -> bool:
        return _escape(key) in self.stats

    def mode(self, key: str) -> str:
        return _MODES[int(self._entry(key).mode_code)]

    def affine(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, offset) of ``key``, the buffers themselves: ``normalize(x) = x * scale + offset``."""
        e = self._entry(key)
        return e.scale, e.offset

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """``x * scale + offset`` for ``x`` (..., *feature shape); pure (returns a new tensor)."""
        e = self._entry(key, x)
        return x * e.scale.to(x) + e.offset.to(x)

    def unnormalize(self, key: str, y: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`: ``(y - offset) / scale``; pure."""
        e = self._entry(key, y)
        return (y - e.offset.to(y)) / e.scale.to(y)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{key: {"mode": str, "min"|"max"|"mean"|"std": nested float lists}}`` (JSON-able)."""
        return {_unescape(k): {"mode": _MODES[int(e.mode_code)],
                               **{s: getattr(e, s).tolist() for s in _STATS}}
                for k, e in self.stats.items()}

    def save(self, path: str | os.PathLike) -> None:
        """Write a safetensors file atomically (temp file + rename)."""
        path = Path(path)
        tensors = {f"{_unescape(k)}/{s}": getattr(e, s).detach().cpu().contiguous()
                   for k, e in self.stats.items() for s in _STATS}
        meta = {"format": _FORMAT, "version": _VERSION,
                "modes": json.dumps({_unescape(k): _MODES[int(e.mode_code)]
                                     for k, e in self.stats.items()})}
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            safetensors.torch.save_file(tensors, str(tmp), metadata=meta)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}: {self.mode(k)} {tuple(self._entry(k).scale.shape)}"
                         for k in self.keys())

    # ------------------------------------------------------------------ internals
    def _entry(self, key: str, x: torch.Tensor | None = None) -> _KeyStats:
        name = _escape(key)
        if name not in self.stats:
            raise KeyError(f"normalizer has no key {key!r}; keys: {self.keys()}")
        e = self.stats[name]
        feat = tuple(e.scale.shape)
        if x is not None and feat and tuple(x.shape[x.ndim - len(feat):]) != feat:
            raise ValueError(f"normalizer key {key!r}: input shape {tuple(x.shape)} does not end "
                             f"with the feature shape {feat}")
        return e

    def _set(self, key: str, entry: Mapping[str, Any]) -> None:
        mode = entry.get("mode")
        if mode not in _MODES:
            raise ValueError(f"normalizer key {key!r}: mode must be one of {_MODES}, got {mode!r}")
        missing = [s for s in _STATS if s not in entry]
        if missing:
            raise KeyError(f"normalizer key {key!r}: missing stats {missing}")
        stats = {s: torch.as_tensor(np.asarray(entry[s], dtype=np.float32)) for s in _STATS}
        shapes = {s: tuple(t.shape) for s, t in stats.items()}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"normalizer key {key!r}: stats have different shapes {shapes}")
        for s, t in stats.items():
            if not torch.isfinite(t).all():
                raise ValueError(f"normalizer key {key!r}: non-finite {s} {t}")
        self.stats[_escape(key)] = _KeyStats(mode, **stats)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        # Create entries for keys present in state_dict, so loading into an empty Normalizer works.
        head = f"{prefix}stats."
        for name in dict.fromkeys(k[len(head):].split(".")[0] for k in state_dict if k.startswith(head)):
            if name not in self.stats:
                shape = state_dict[f"{head}{name}.scale"].shape
                zeros = torch.zeros(shape)
                self.stats[name] = _KeyStats("minmax", zeros, zeros + 1, zeros, zeros + 1)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


class _KeyStats(nn.Module):
    """Buffers of one key: stats, derived ``scale``/``offset`` and ``mode_code`` (index in _MODES)."""

    def __init__(self, mode: str, min: torch.Tensor, max: torch.Tensor, mean: torch.Tensor,
                 std: torch.Tensor) -> None:
        super().__init__()
        for name, t in (("min", min), ("max", max), ("mean", mean), ("std", std)):
            self.register_buffer(name, t.float().clone())
        self.register_buffer("mode_code", torch.tensor(_MODES.index(mode), dtype=torch.int64))
        scale, offset = _affine(mode, self.min, self.max, self.mean, self.std)
        self.register_buffer("scale", scale)
        self.register_buffer("offset", offset)


def _affine(mode: str, lo: torch.Tensor, hi: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, offset) with y = x * scale + offset; constant features map to 0 with unit scale."""
    if mode == "image":
        return torch.full_like(lo, 2.0), torch.full_like(lo, -1.0)
    if mode == "minmax":
        span, centre = hi - lo, (hi + lo) / 2
        const = span < _EPS
        scale = torch.where(const, torch.ones_like(span), 2.0 / torch.where(const, 1.0, span))
        return scale, -centre * scale
    const = std < _EPS
    scale = torch.where(const, torch.ones_like(std), 1.0 / torch.where(const, 1.0, std))
    return scale, -mean * scale


def _image_stats() -> dict[str, Any]:
    return {"mode": "image", "min": 0.0, "max": 1.0, "mean": 0.5, "std": 0.5}


def _channel_stats(arr: Any, n_steps: int) -> dict[str, np.ndarray]:
    """Per-channel stats of float images ``arr`` (T, H, W, C), broadcast to (C, H, W)."""
    flat = _FlatPixels(arr)
    stats = _streamed_stats(flat, n_steps * flat.pixels)
    h, w, c = arr.shape[1:]
    return {k: np.broadcast_to(np.asarray(v).reshape(c, 1, 1), (c, h, w)).copy()
            for k, v in stats.items()}


class _FlatPixels:
    """Read-only view of (T, H, W, C) as (T*H*W, C) rows, chunked like the underlying array."""

    def __init__(self, arr: Any) -> None:
        self._arr = arr
        self.pixels = int(np.prod(arr.shape[1:3]))
        self.shape = (arr.shape[0] * self.pixels, arr.shape[3])
        self.chunks = (max(1, arr.chunks[0]) * self.pixels,)

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop = rows.start // self.pixels, -(-rows.stop // self.pixels)
        return np.asarray(self._arr[start:stop]).reshape(-1, self.shape[1])


def _streamed_stats(arr: Any, n_steps: int) -> dict[str, np.ndarray]:
    """Per-feature min/max/mean/std of ``arr[:n_steps]``, read chunk by chunk; mean and variance
    merged with Chan et al.'s pairwise update in float64 (no E[x^2] - E[x]^2 cancellation)."""
    step = max(1, arr.chunks[0])
    lo = hi = None
    count, mean, m2 = 0, np.zeros(arr.shape[1:]), np.zeros(arr.shape[1:])
    for b in range(0, n_steps, step):
        x = np.asarray(arr[b: min(b + step, n_steps)], dtype=np.float64)
        lo = x.min(0) if lo is None else np.minimum(lo, x.min(0))
        hi = x.max(0) if hi is None else np.maximum(hi, x.max(0))
        n_b, mean_b = x.shape[0], x.mean(0)
        m2_b = np.square(x - mean_b).sum(0)
        delta, total = mean_b - mean, count + n_b
        mean = mean + delta * (n_b / total)
        m2 = m2 + m2_b + np.square(delta) * (count * n_b / total)
        count = total
    return {"min": lo, "max": hi, "mean": mean, "std": np.sqrt(m2 / count)}


def _escape(key: str) -> str:
    """Module names cannot contain '.'; percent-encode it (and '%') reversibly."""
    return key.replace("%", "%25").replace(".", "%2E")


def _unescape(name: str) -> str:
    return name.replace("%2E", ".").replace("%25", "%")
