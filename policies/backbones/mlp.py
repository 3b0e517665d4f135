"""Residual MLP backbone: the whole chunk flattened, concatenated with time and observation features.

Small and fast on CPU; the default for state-only tasks and for tests. Contract as in
``ttfkit.policies.backbones``: forward(x (B, H, Da), t (B,) in [0, 1], cond (B, Dc)) -> (B, H, Da).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ttfkit.policies.backbones import sinusoidal_embedding

__all__ = ["Config", "MLPBackbone"]


@dataclass(frozen=True)
class Config:
    """Residual MLP size.

    Args:
        hidden_dim: width of the residual stream.
        n_blocks: residual blocks (LayerNorm -> Linear -> GELU -> Linear, added to the stream).
        expansion: hidden width multiplier inside a block.
        time_dim: sinusoidal time-embedding width.
    """

    hidden_dim: int = 384
    n_blocks: int = 3
    expansion: int = 2
    time_dim: int = 64

    def __post_init__(self):
        for name in ("hidden_dim", "n_blocks", "expansion", "time_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"mlp backbone: {name} must be >= 1, got {getattr(self, name)}")
        if self.time_dim % 2:
            raise ValueError(f"mlp backbone: time_dim must be even, got {self.time_dim=}")


class MLPBackbone(nn.Module):
    """x (B, H, Da), t (B,), cond (B, Dc) -> (B, H, Da)."""

    def __init__(self, config: Config, *, action_dim: int, horizon: int, cond_dim: int):
        super().__init__()
        self.config, self.action_dim, self.horizon = config, action_dim, horizon
        d = config.hidden_dim
        self.time_mlp = nn.Sequential(nn.Linear(config.time_dim, config.time_dim), nn.GELU())
        self.in_proj = nn.Linear(horizon * action_dim + config.time_dim + cond_dim, d)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d * config.expansion), nn.GELU(),
                          nn.Linear(d * config.expansion, d))
            for _ in range(config.n_blocks)
        )
        self.out_norm = nn.LayerNorm(d)
        self.out_proj = nn.Linear(d, horizon * action_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(sinusoidal_embedding(t, self.config.time_dim))  # (B, Te)
        h = self.in_proj(torch.cat([x.flatten(1), temb, cond], dim=-1))  # (B, d); x flattened to (B, H*Da)
        out = self.out_proj(self.trunk(h))  # (B, H*Da)
        return out.view(out.shape[0], self.horizon, self.action_dim)  # (B, H, Da)

    def trunk(self, h: torch.Tensor) -> torch.Tensor:
        """The layers between ``in_proj`` and ``out_proj``: residual blocks, then the output norm; (B, d) -> (B, d).
        Callers that fold the input and output layers (the one-step policy) run this part as it is."""
        for block in self.blocks:
            h = h + block(h)
        return self.out_norm(h)
