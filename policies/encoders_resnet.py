"""Diffusion Policy's vision encoder in plain torch: ResNet-18 with GroupNorm, spatial-softmax head.

Chi et al. 2023 (Diffusion Policy, Sec. 3.3) take torchvision's ResNet-18 without pretraining,
replace every BatchNorm by GroupNorm (``num_groups = channels // 16``; BatchNorm statistics fight
the EMA of the weights), drop the global average pool and the classifier, and read the last
feature map out with a spatial softmax (32 keypoints, Levine et al. 2016) followed by a linear
layer. One such encoder is trained per camera. Random-crop augmentation (train: random window,
eval: centre window) is applied by ``ttfkit.policies.encoders.ObsEncoder`` before any image
encoder, so it is shared with the small conv net.

This is a from-scratch re-implementation of the same architecture (He et al. 2016, "basic" blocks
[2, 2, 2, 2] at widths w, 2w, 4w, 8w; w = 64 is ResNet-18), so no torchvision is needed and the
width can be shrunk (``resnet_width``) for CPU experiments and tests.

Shapes: (N, 3, H, W) in [-1, 1] -> (N, image_features); the feature map is (N, 8w, ~H/32, ~W/32).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

__all__ = ["ResNetImageEncoder"]


class ResNetImageEncoder(nn.Module):
    """(N, 3, H, W) -> (N, image_features): GroupNorm ResNet-18 trunk, 1x1 conv to K maps, spatial
    softmax, Linear(2K, image_features), ReLU (as LeRobot's and Diffusion Policy's heads).

    Args:
        config: ``ttfkit.policies.encoders.EncoderConfig`` (uses ``resnet_width``,
            ``image_keypoints`` and ``image_features``).
    """

    def __init__(self, config, in_channels: int = 3) -> None:
        super().__init__()
        from ttfkit.policies.encoders import SpatialSoftmax

        self.trunk = ResNet18GN(width=config.resnet_width, in_channels=in_channels)
        self.to_keypoints = nn.Conv2d(self.trunk.out_channels, config.image_keypoints, 1)
        self.keypoints = SpatialSoftmax()
        self.out = nn.Sequential(nn.Linear(2 * config.image_keypoints, config.image_features), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.to_keypoints(self.trunk(x))  # (N, K, h, w)
        return self.out(rearrange(self.keypoints(maps), "n k xy -> n (k xy)"))  # (N, F)


class ResNet18GN(nn.Module):
    """ResNet-18 convolutional trunk (no pooling head) with GroupNorm(channels // 16, channels).

    Args:
        width: channels of the first stage (64 = ResNet-18; must be a multiple of 16).
        in_channels: image channels C (3 = RGB as in ResNet-18, 1 = depth).
    Shapes: (N, C, H, W) -> (N, 8 * width, ceil(H/32), ceil(W/32)).
    """

    def __init__(self, width: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        if width < 16 or width % 16:
            raise ValueError(f"ResNet18GN: width must be a positive multiple of 16, got {width=}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False), _norm(width), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages, c_in = [], width
        for i, c_out in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(_BasicBlock(c_in, c_out, stride), _BasicBlock(c_out, c_out, 1)))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.out_channels = 8 * width
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class _BasicBlock(nn.Module):
    """3x3 conv - GN - ReLU - 3x3 conv - GN, plus the (1x1 strided conv - GN) shortcut; ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.norm2 = _norm(c_out)
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out else
                         nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), _norm(c_out)))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(channels // 16, channels)
