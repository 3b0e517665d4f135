"""Observation encoders: normalised obs history {key: (B, To, ...)} -> conditioning features (B, Dc).

Low-dimensional keys (shape (D,)) are concatenated over keys and the To steps and passed through an
MLP. Image keys (shape (3, H, W), values in [-1, 1] after normalisation) go through a small conv net
with a spatial-softmax keypoint head (Levine et al. 2016; as in Diffusion Policy's ResNet encoder
head), shared across time steps and trained end to end; features of all steps are concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

__all__ = ["ObsEncoder"]


@dataclass(frozen=True)
class EncoderConfig:
    """Observation-encoder size.

    Args:
        lowdim_hidden: hidden width of the low-dim MLP.
        lowdim_features: output width of the low-dim MLP (0: pass the flat normalised state through).
        image_channels: conv channels of the image encoder.
        image_keypoints: spatial-softmax keypoints per image (2 features each).
        image_features: image feature width per time step.
    """

    lowdim_hidden: int = 256
    lowdim_features: int = 128
    image_channels: int = 32
    image_keypoints: int = 32
    image_features: int = 64

    def __post_init__(self):
        for name in ("lowdim_hidden", "image_channels", "image_keypoints", "image_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"encoder: {name} must be >= 1, got {getattr(self, name)}")
        if self.lowdim_features < 0:
            raise ValueError(f"encoder: lowdim_features must be >= 0, got {self.lowdim_features=}")


class ObsEncoder(nn.Module):
    """{key: (B, To, *shape)} (already normalised) -> (B, out_dim).

    Args:
        obs_shapes: per-key shape of ONE step: (D,) for state, (3, H, W) for images.
        n_obs_steps: To.
        config: sizes.
    """

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], n_obs_steps: int, config: EncoderConfig):
        super().__init__()
        if not obs_shapes:
            raise ValueError("encoder: obs_shapes is empty; give at least one observation key")
        self.obs_shapes = {k: tuple(v) for k, v in obs_shapes.items()}
        self.lowdim_keys = sorted(k for k, s in self.obs_shapes.items() if len(s) == 1)
        self.image_keys = sorted(k for k, s in self.obs_shapes.items() if len(s) == 3)
        odd = sorted(set(self.obs_shapes) - set(self.lowdim_keys) - set(self.image_keys))
        if odd:
            raise ValueError(f"encoder: keys {odd} have shapes {[self.obs_shapes[k] for k in odd]}; "
                             "expected (D,) for state or (3, H, W) for images")
        for k in self.image_keys:
            if self.obs_shapes[k][0] != 3:
                raise ValueError(f"encoder: image key {k!r} must be channels-first (3, H, W), got {self.obs_shapes[k]}")
        self.n_obs_steps = n_obs_steps
        out = 0
        self.lowdim = None
        if self.lowdim_keys:
            flat = n_obs_steps * sum(self.obs_shapes[k][0] for k in self.lowdim_keys)
            if config.lowdim_features == 0:
                self.lowdim, out = nn.Identity(), flat
            else:
                self.lowdim = nn.Sequential(nn.Linear(flat, config.lowdim_hidden), nn.Mish(),
                                            nn.Linear(config.lowdim_hidden, config.lowdim_features))
                out = config.lowdim_features
        self.images = nn.ModuleDict({k: _ImageEncoder(config) for k in self.image_keys})
        out += len(self.image_keys) * n_obs_steps * config.image_features
        self.out_dim = out

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = []
        if self.lowdim is not None:
            state = torch.cat([obs[k] for k in self.lowdim_keys], dim=-1)  # (B, To, sum D)
            feats.append(self.lowdim(rearrange(state, "b t d -> b (t d)")))
        for k in self.image_keys:
            x = obs[k]  # (B, To, 3, H, W)
            f = self.images[k](rearrange(x, "b t c h w -> (b t) c h w"))  # (B*To, F)
            feats.append(rearrange(f, "(b t) f -> b (t f)", b=x.shape[0]))
        return torch.cat(feats, dim=-1)  # (B, Dc)


class _ImageEncoder(nn.Module):
    """(N, 3, H, W) in [-1, 1] -> (N, image_features): conv stack, 1x1 to K maps, spatial softmax."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        c = config.image_channels
        self.convs = nn.Sequential(
            nn.Conv2d(3, c, 5, stride=2, padding=2), nn.GroupNorm(8 if c % 8 == 0 else 1, c), nn.Mish(),
            nn.Conv2d(c, 2 * c, 3, stride=1, padding=1), nn.GroupNorm(8 if c % 8 == 0 else 1, 2 * c), nn.Mish(),
            nn.Conv2d(2 * c, 2 * c, 3, stride=1, padding=1), nn.GroupNorm(8 if c % 8 == 0 else 1, 2 * c), nn.Mish(),
            nn.Conv2d(2 * c, config.image_keypoints, 1),
        )
        self.keypoints = SpatialSoftmax()
        self.out = nn.Sequential(nn.Linear(2 * config.image_keypoints, config.image_features), nn.Mish())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(rearrange(self.keypoints(self.convs(x)), "n k xy -> n (k xy)"))


class SpatialSoftmax(nn.Module):
    """(N, K, H, W) feature maps -> (N, K, 2) expected (x, y) under softmax(map), coords in [-1, 1].

    x runs along W (left -1, right +1), y along H (top -1, bottom +1). Pure; no parameters.
    """

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        n, k, h, w = maps.shape
        probs = torch.softmax(rearrange(maps, "n k h w -> n k (h w)"), dim=-1)  # (N, K, H*W)
        ys = torch.linspace(-1.0, 1.0, h, device=maps.device, dtype=maps.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=maps.device, dtype=maps.dtype)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        coords = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=-1)  # (H*W, 2)
        return probs @ coords  # (N, K, 2)
