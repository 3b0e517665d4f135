"""Shared fixtures for tests/align: the exact 2-D Gaussian-mixture flow and energy-distance thresholds."""

import pytest
import torch

from ttfkit.align.testing import GaussianMixtureFlow, energy_noise_floor


@pytest.fixture
def mix2d() -> GaussianMixtureFlow:
    """Two well-separated components of different widths and weights in 2-D."""
    return GaussianMixtureFlow(torch.tensor([0.3, 0.7]), torch.tensor([[-2.0, 0.0], [1.5, 1.0]]), torch.tensor([0.4, 0.6]))


@pytest.fixture
def floor_threshold():
    """threshold(sampler, n, m=n) = mean + 4 std of the energy distance between exact sample sets of sizes
    n and m. For correlated samplers (SMC) n is their effective size (the run's smallest ESS)."""

    def threshold(sampler, n: int, m: int | None = None, seed: int = 1234, repeats: int = 20) -> float:
        gen = torch.Generator().manual_seed(seed)
        mean, std = energy_noise_floor(sampler, int(n), int(m or n), repeats=repeats, generator=gen)
        return mean + 4 * std

    return threshold
