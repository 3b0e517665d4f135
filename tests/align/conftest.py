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


@pytest.fixture(scope="module")
def tiny_policy():
    """A small untrained flow policy over Meta-World's state observations (H 8, To 2, 4 executed steps)."""
    from ttfkit.policies import make_policy

    torch.manual_seed(0)
    return make_policy("flow", obs_shapes={"agent_pos": (4,), "environment_state": (17,)}, action_dim=4,
                       horizon=8, n_obs_steps=2, n_action_steps=4, num_steps=4,
                       backbone_options={"hidden_dim": 32, "n_blocks": 1}).eval()
