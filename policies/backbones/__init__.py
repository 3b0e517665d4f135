"""Networks shared by every policy: (B, H, Da) chunks in, same shape out, conditioned on (B, Dc).

Every backbone has one contract, ``forward(x, t, cond) -> out``:
    x    (B, H, Da)  noisy action chunk (normalised action space)
    t    (B,)        float time in [0, 1] (flow time, or diffusion step k / K); embedded sinusoidally
    cond (B, Dc)     observation features from ``ttfkit.policies.encoders.ObsEncoder``
    out  (B, H, Da)  velocity, noise or clean-sample prediction (the policy decides which)

Backbones are looked up by name ("mlp", "unet", "transformer"); each module defines a frozen
``Config`` dataclass (plain, JSON-able fields) and the network class, imported on demand.
"""

from __future__ import annotations

import importlib
import math

import torch
from torch import nn

__all__ = ["make_backbone", "list_backbones", "backbone_config", "sinusoidal_embedding"]

# name -> (module, class). The module also defines ``Config``.
_BACKBONES: dict[str, tuple[str, str]] = {
    "mlp": ("ttfkit.policies.backbones.mlp", "MLPBackbone"),
    "unet": ("ttfkit.policies.backbones.unet1d", "ConditionalUnet1D"),
    "transformer": ("ttfkit.policies.backbones.transformer", "TransformerBackbone"),
}


def list_backbones() -> list[str]:
    """Registered backbone names."""
    return sorted(_BACKBONES)


def _lookup(name: str):
    if name not in _BACKBONES:
        raise KeyError(f"unknown backbone {name!r}; choose from {list_backbones()}")
    module_name, class_name = _BACKBONES[name]
    module = importlib.import_module(module_name)
    return module, getattr(module, class_name)


def backbone_config(name: str, options: dict | None = None):
    """The validated ``Config`` of backbone ``name`` with ``options`` applied (unknown keys: TypeError)."""
    module, _ = _lookup(name)
    options = dict(options or {})
    fields = set(module.Config.__dataclass_fields__)
    unknown = set(options) - fields
    if unknown:
        raise TypeError(f"backbone {name!r} has no option(s) {sorted(unknown)}; options: {sorted(fields)}")
    # JSON round trips turn tuples into lists; configs store tuples.
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return module.Config(**options)


def make_backbone(name: str, *, action_dim: int, horizon: int, cond_dim: int,
                  options: dict | None = None) -> nn.Module:
    """Build backbone ``name`` for chunks (B, horizon, action_dim) conditioned on (B, cond_dim)."""
    _, cls = _lookup(name)
    return cls(backbone_config(name, options), action_dim=action_dim, horizon=horizon, cond_dim=cond_dim)


def sinusoidal_embedding(t: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """Transformer-style sinusoidal features of ``scale * t``: (B,) -> (B, dim). Pure."""
    if dim % 2:
        raise ValueError(f"sinusoidal embedding dim must be even, got {dim=}")
    args = scale * t.float()[:, None] * _frequencies(dim // 2, t.device)[None, :]  # (B, half)
    return torch.cat([args.sin(), args.cos()], dim=-1).to(t.dtype if t.is_floating_point() else torch.float32)


_FREQUENCIES: dict[tuple[int, torch.device], torch.Tensor] = {}


def _frequencies(half: int, device: torch.device) -> torch.Tensor:
    """(half,) float32 frequencies of :func:`sinusoidal_embedding`, built once per size and device (four kernel
    launches per network call otherwise, which count at batch 1 on CPU). Made outside inference mode, so a cache
    filled during evaluation still works in training graphs; a plain dict, which torch.compile traces without
    complaint (it warns on functools caches)."""
    key = (half, device)
    if key not in _FREQUENCIES:
        with torch.inference_mode(False):
            _FREQUENCIES[key] = torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float32)
                                          / max(half - 1, 1))
    return _FREQUENCIES[key]
