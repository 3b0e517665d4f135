"""Diffusion-Policy-style 1-D conditional U-Net over the action chunk's time axis.

Chi et al., "Diffusion Policy" (RSS 2023): Conv1d + GroupNorm + Mish residual blocks, FiLM
(per-channel scale and bias) from [time embedding, observation features], strided-conv downsampling
and transposed-conv upsampling with skip connections. The chunk (B, H, Da) is treated as Da channels
over H time steps. ``down_dims=(256, 512, 1024)`` gives Diffusion Policy's size; the default
(64, 128, 256) is a few M parameters, sized for CPU training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from ttfkit.policies.backbones import sinusoidal_embedding

__all__ = ["Config", "ConditionalUnet1D"]


@dataclass(frozen=True)
class Config:
    """U-Net size.

    Args:
        down_dims: channels at each resolution; the horizon is halved len(down_dims) - 1 times.
        kernel_size: temporal convolution kernel (odd).
        n_groups: GroupNorm groups (must divide every channel count).
        time_dim: time-embedding width.
    """

    down_dims: tuple[int, ...] = (64, 128, 256)
    kernel_size: int = 5
    n_groups: int = 8
    time_dim: int = 128

    def __post_init__(self):
        if not self.down_dims or any(d < 1 for d in self.down_dims):
            raise ValueError(f"unet backbone: down_dims must be positive, got {self.down_dims=}")
        bad = [d for d in self.down_dims if d % self.n_groups]
        if bad:
            raise ValueError(f"unet backbone: n_groups={self.n_groups} must divide every down_dim, not {bad}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"unet backbone: kernel_size must be odd and positive, got {self.kernel_size=}")
        if self.time_dim < 2 or self.time_dim % 2:
            raise ValueError(f"unet backbone: time_dim must be even, got {self.time_dim=}")


class ConditionalUnet1D(nn.Module):
    """x (B, H, Da), t (B,), cond (B, Dc) -> (B, H, Da)."""

    def __init__(self, config: Config, *, action_dim: int, horizon: int, cond_dim: int):
        super().__init__()
        factor = 2 ** (len(config.down_dims) - 1)
        if horizon % factor:
            raise ValueError(f"unet backbone: horizon={horizon} must be divisible by {factor} "
                             f"(2 ** (len(down_dims) - 1) for down_dims={config.down_dims})")
        self.config = config
        te, k, g = config.time_dim, config.kernel_size, config.n_groups
        self.time_mlp = nn.Sequential(nn.Linear(te, 4 * te), nn.Mish(), nn.Linear(4 * te, te))
        film_dim = te + cond_dim
        dims = (action_dim, *config.down_dims)
        pairs = list(zip(dims[:-1], dims[1:]))
        self.down = nn.ModuleList()
        for i, (cin, cout) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.down.append(nn.ModuleList([
                _ResBlock(cin, cout, film_dim, k, g), _ResBlock(cout, cout, film_dim, k, g),
                nn.Conv1d(cout, cout, 3, stride=2, padding=1) if not last else nn.Identity(),
            ]))
        mid = dims[-1]
        self.mid = nn.ModuleList([_ResBlock(mid, mid, film_dim, k, g), _ResBlock(mid, mid, film_dim, k, g)])
        self.up = nn.ModuleList()
        for cin, cout in reversed(pairs[1:]):  # every up level doubles the length back
            self.up.append(nn.ModuleList([
                _ResBlock(cout * 2, cin, film_dim, k, g), _ResBlock(cin, cin, film_dim, k, g),
                nn.ConvTranspose1d(cin, cin, 4, stride=2, padding=1),
            ]))
        self.final = nn.Sequential(_ConvBlock(dims[1], dims[1], k, g), nn.Conv1d(dims[1], action_dim, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        film = torch.cat([self.time_mlp(sinusoidal_embedding(t, self.config.time_dim)), cond], dim=-1)  # (B, Te+Dc)
        h = rearrange(x, "b h a -> b a h")  # (B, Da, H)
        skips = []
        for res1, res2, downsample in self.down:
            h = res2(res1(h, film), film)
            skips.append(h)
            h = downsample(h)
        for block in self.mid:
            h = block(h, film)
        for res1, res2, upsample in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = upsample(res2(res1(h, film), film))
        return rearrange(self.final(h), "b a h -> b h a")


class _ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, groups: int):
        super().__init__(nn.Conv1d(cin, cout, k, padding=k // 2), nn.GroupNorm(groups, cout), nn.Mish())


class _ResBlock(nn.Module):
    """Two conv blocks; FiLM (scale, bias) from the conditioning after the first; 1x1 residual."""

    def __init__(self, cin: int, cout: int, film_dim: int, k: int, groups: int):
        super().__init__()
        self.block1, self.block2 = _ConvBlock(cin, cout, k, groups), _ConvBlock(cout, cout, k, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(film_dim, 2 * cout))
        self.residual = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, h: torch.Tensor, film: torch.Tensor) -> torch.Tensor:
        out = self.block1(h)  # (B, C, H')
        scale, bias = self.film(film)[:, :, None].chunk(2, dim=1)  # (B, C, 1) each
        out = self.block2(scale * out + bias)
        return out + self.residual(h)
