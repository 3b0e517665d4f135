"""Observation encoders: normalised obs history {key: (B, To, ...)} -> conditioning features (B, Dc).

Low-dimensional keys (shape (D,)) are concatenated over keys and the To steps and passed through an
MLP. Image keys (shape (C, H, W): RGB C = 3, depth C = 1, ...; values normalised) go through one image
encoder per key (per camera), shared across time steps and trained end to end; features of all steps
are concatenated. Image encoders are registered by name in ``IMAGE_ENCODERS``:

- ``"conv"``: a small conv net with a spatial-softmax keypoint head (Levine et al. 2016), fast on CPU;
- ``"resnet18"``: Diffusion Policy's encoder, ResNet-18 with GroupNorm and a spatial-softmax head
  (``ttfkit.policies.encoders_resnet``, imported on use).

Random-crop augmentation (Diffusion Policy: 84 -> 76 pixels, ``crop_ratio=0.9``): with
``crop_ratio < 1`` every image is cut to ``round(crop_ratio * H) x round(crop_ratio * W)`` before its
encoder, at a random position drawn independently per image and time step in training mode
(``module.train()``), and at the centre in eval mode. The random positions come from the
``generator`` passed to ``forward`` (torch's global RNG if None; the trainer seeds that per step
from (seed, step), so training runs stay reproducible and resumable).
"""

from __future__ import annotations

from dataclasses import dataclass

import importlib

import torch
from einops import rearrange
from torch import nn

__all__ = ["ObsEncoder", "EncoderConfig", "IMAGE_ENCODERS", "crop_images"]

# name -> "module:Class"; ``cls(config, in_channels=C)`` maps (N, C, H, W) -> (N, image_features).
IMAGE_ENCODERS: dict[str, str] = {
    "conv": "ttfkit.policies.encoders:_ImageEncoder",
    "resnet18": "ttfkit.policies.encoders_resnet:ResNetImageEncoder",
}


@dataclass(frozen=True)
class EncoderConfig:
    """Observation-encoder size.

    Args:
        lowdim_hidden: hidden width of the low-dim MLP.
        lowdim_features: output width of the low-dim MLP (0: pass the flat normalised state through).
        image_channels: conv channels of the image encoder.
        image_keypoints: spatial-softmax keypoints per image (2 features each).
        image_features: image feature width per time step.
        image_encoder: image encoder name in ``IMAGE_ENCODERS`` (one instance per camera key).
        crop_ratio: side of the random (train) / centre (eval) crop as a fraction of the image side
            (1.0: no crop; Diffusion Policy uses 76/84 ~ 0.9).
        resnet_width: first-stage channels of ``"resnet18"`` (64 is ResNet-18; smaller is faster).
    """

    lowdim_hidden: int = 256
    lowdim_features: int = 128
    image_channels: int = 32
    image_keypoints: int = 32
    image_features: int = 64
    image_encoder: str = "conv"
    crop_ratio: float = 1.0
    resnet_width: int = 64

    def __post_init__(self):
        if self.image_encoder not in IMAGE_ENCODERS:
            raise ValueError(f"encoder: unknown image_encoder {self.image_encoder!r}; known: {sorted(IMAGE_ENCODERS)}")
        if not 0.0 < self.crop_ratio <= 1.0:
            raise ValueError(f"encoder: crop_ratio must lie in (0, 1], got {self.crop_ratio=}")
        if self.resnet_width < 16 or self.resnet_width % 16:
            raise ValueError(f"encoder: resnet_width must be a positive multiple of 16, got {self.resnet_width=}")
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
                             "expected (D,) for state or channels-first (C, H, W) for images")
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
        self.crops = {k: _crop_size(self.obs_shapes[k][1:], config.crop_ratio, k) for k in self.image_keys}
        image_cls = _image_encoder_class(config.image_encoder)
        self.images = nn.ModuleDict({k: image_cls(config, in_channels=self.obs_shapes[k][0]) for k in self.image_keys})
        out += len(self.image_keys) * n_obs_steps * config.image_features
        self.out_dim = out

    def forward(self, obs: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """obs {key: (B, To, ...)} -> (B, out_dim); ``generator`` draws the training-mode crops."""
        return self.encode(self.join_state(obs), {k: obs[k] for k in self.image_keys}, generator)

    def join_state(self, obs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The low-dim keys of ``obs`` {key: (B, To, D)} joined in ``lowdim_keys`` order, (B, To, sum D); None
        without low-dim keys. Works on anything laid out per key the same way (statistics (D,) too)."""
        if not self.lowdim_keys:
            return None
        parts = [obs[k] for k in self.lowdim_keys]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def encode(self, state: torch.Tensor | None, images: dict[str, torch.Tensor],
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``forward`` with the low-dim keys already joined: ``state`` (B, To, sum D) in ``lowdim_keys`` order
        (None without low-dim keys), ``images`` {image key: (B, To, C, H, W)} -> (B, out_dim)."""
        feats = []
        if self.lowdim is not None:
            feats.append(self.lowdim(state.flatten(1)))  # (B, To * sum D)
        for k in self.image_keys:
            x = images[k]  # (B, To, C, H, W)
            flat = rearrange(x, "b t c h w -> (b t) c h w")
            if self.crops[k] != tuple(flat.shape[-2:]):
                flat = crop_images(flat, self.crops[k], random=self.training, generator=generator)
            f = self.images[k](flat)  # (B*To, F)
            feats.append(rearrange(f, "(b t) f -> b (t f)", b=x.shape[0]))
        return feats[0] if len(feats) == 1 else torch.cat(feats, dim=-1)  # (B, Dc)


def crop_images(x: torch.Tensor, size: tuple[int, int], random: bool,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop (N, C, H, W) to (N, C, h, w): per-image random windows (``random``) or the centre one.

    Random top-left corners are uniform over the ``(H - h + 1) x (W - w + 1)`` positions, drawn with
    ``generator`` on its own device (torch's global RNG if None). The centre window starts at
    ``((H - h) // 2, (W - w) // 2)``. Pure: returns a new tensor.
    """
    n, _, height, width = x.shape
    h, w = size
    if not (0 < h <= height and 0 < w <= width):
        raise ValueError(f"crop {size} does not fit images of {(height, width)}")
    if not random:
        top, left = (height - h) // 2, (width - w) // 2
        return x[:, :, top:top + h, left:left + w]
    gen_device = generator.device if generator is not None else "cpu"
    top = torch.randint(0, height - h + 1, (n,), generator=generator, device=gen_device).to(x.device)
    left = torch.randint(0, width - w + 1, (n,), generator=generator, device=gen_device).to(x.device)
    rows = top[:, None] + torch.arange(h, device=x.device)  # (N, h)
    cols = left[:, None] + torch.arange(w, device=x.device)  # (N, w)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, h, w, C)
    return out.permute(0, 3, 1, 2).contiguous()  # (N, C, h, w)


def _crop_size(hw: tuple[int, ...], ratio: float, key: str) -> tuple[int, int]:
    size = (max(1, round(hw[0] * ratio)), max(1, round(hw[1] * ratio)))
    if ratio < 1.0 and size == tuple(hw):
        raise ValueError(f"encoder: crop_ratio {ratio} leaves image {key!r} of {tuple(hw)} uncropped")
    return size


def _image_encoder_class(name: str) -> type[nn.Module]:
    module, cls = IMAGE_ENCODERS[name].split(":")
    return getattr(importlib.import_module(module), cls)


class _ImageEncoder(nn.Module):
    """(N, C, H, W) normalised -> (N, image_features): conv stack, 1x1 to K maps, spatial softmax."""

    def __init__(self, config: EncoderConfig, in_channels: int = 3):
        super().__init__()
        c = config.image_channels
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, c, 5, stride=2, padding=2), nn.GroupNorm(8 if c % 8 == 0 else 1, c), nn.Mish(),
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
