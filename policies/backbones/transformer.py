"""Small transformer backbone: one token per chunk step, plus a time token and an observation token.

Pre-norm ``nn.TransformerEncoder`` with full attention over [time, obs, a_0 .. a_{H-1}] tokens and
learned positions (in the spirit of Diffusion Policy's TransformerForDiffusion, encoder-only).
Contract as in ``ttfkit.policies.backbones``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ttfkit.policies.backbones import sinusoidal_embedding

__all__ = ["Config", "TransformerBackbone"]


@dataclass(frozen=True)
class Config:
    """Transformer size.

    Args:
        d_model: token width.
        n_layers: encoder layers.
        n_heads: attention heads (must divide d_model).
        ff_mult: feed-forward width multiplier.
        dropout: dropout inside the layers (0 keeps training deterministic given the batch).
        time_dim: sinusoidal time-embedding width.
    """

    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 4
    ff_mult: int = 4
    dropout: float = 0.0
    time_dim: int = 64

    def __post_init__(self):
        if self.d_model < 1 or self.n_layers < 1 or self.n_heads < 1 or self.ff_mult < 1:
            raise ValueError(f"transformer backbone: sizes must be >= 1, got {self}")
        if self.d_model % self.n_heads:
            raise ValueError(f"transformer backbone: n_heads={self.n_heads} must divide d_model={self.d_model}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"transformer backbone: dropout must lie in [0, 1), got {self.dropout=}")


class TransformerBackbone(nn.Module):
    """x (B, H, Da), t (B,), cond (B, Dc) -> (B, H, Da)."""

    def __init__(self, config: Config, *, action_dim: int, horizon: int, cond_dim: int):
        super().__init__()
        d = config.d_model
        self.config = config
        self.action_in = nn.Linear(action_dim, d)
        self.time_in = nn.Sequential(nn.Linear(config.time_dim, d), nn.GELU(), nn.Linear(d, d))
        self.cond_in = nn.Linear(cond_dim, d)
        self.pos = nn.Parameter(torch.zeros(1, horizon + 2, d))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(d, config.n_heads, config.ff_mult * d, config.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, action_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        time_tok = self.time_in(sinusoidal_embedding(t, self.config.time_dim))[:, None]  # (B, 1, d)
        cond_tok = self.cond_in(cond)[:, None]  # (B, 1, d)
        tokens = torch.cat([time_tok, cond_tok, self.action_in(x)], dim=1) + self.pos  # (B, H+2, d)
        h = self.encoder(tokens)
        return self.out(self.out_norm(h[:, 2:]))  # (B, H, Da)
