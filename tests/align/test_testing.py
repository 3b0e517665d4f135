"""The exact fixture against independent references: score by autograd, SIR for the tilted target,
Monte Carlo for values, marginal preservation of the exact transition."""

import math

import pytest
import torch

from ttfkit.align.testing import GaussianMixtureFlow, energy_distance


def test_velocity_matches_score_of_marginal(mix2d):
    # u = (x + (1-t)·score)/t with the score from autograd of log p_t (independent of the closed form).
    g = torch.Generator().manual_seed(0)
    for t in (0.1, 0.5, 0.9):
        x = mix2d.marginal_sample(t, 64, generator=g).double().requires_grad_(True)
        m64 = GaussianMixtureFlow(mix2d.weights.double(), mix2d.means.double(), mix2d.stds.double())
        (score,) = torch.autograd.grad(m64.marginal_log_prob(t, x).sum(), x)
        u_ref = (x + (1 - t) * score) / t
        torch.testing.assert_close(m64.velocity(torch.full((64,), t, dtype=torch.float64), x.detach()), u_ref.detach())
        d = m64.denoiser(torch.full((64,), t, dtype=torch.float64), x.detach())
        torch.testing.assert_close(d, x.detach() + (1 - t) * u_ref.detach())


def test_velocity_at_t0_is_mean_minus_x(mix2d):
    x = torch.randn(5, 2)
    mean = (mix2d.weights[:, None] * mix2d.means).sum(0)
    torch.testing.assert_close(mix2d.velocity(torch.zeros(5), x), mean - x)


def test_posterior_moments_match_denoiser(mix2d):
    g = torch.Generator().manual_seed(1)
    x = torch.tensor([[0.3, 0.2]]).expand(20000, 2)
    z = mix2d.posterior_sample(0.6, x, generator=g)
    torch.testing.assert_close(z.mean(0), mix2d.denoiser(torch.full((1,), 0.6), x[:1])[0], atol=0.02, rtol=0)


def test_tilt_matches_importance_resampling(mix2d, floor_threshold):
    # SIR with 400k proposals is (nearly) exact for p·exp(r); the tilted mixture must agree.
    g = torch.Generator().manual_seed(2)
    center, tau = torch.tensor([-1.0, 0.5]), 0.7
    tilt = mix2d.tilt(center, tau)
    prop = mix2d.sample(400_000, generator=g)
    logw = -((prop - center) ** 2).sum(1) / (2 * tau**2)
    idx = torch.multinomial(torch.softmax(logw, 0), 1000, replacement=True, generator=g)
    thr = floor_threshold(lambda k, gg: tilt.sample(k, generator=gg), 1000)
    assert energy_distance(prop[idx], tilt.sample(1000, generator=g)) < thr


def test_value_matches_monte_carlo(mix2d):
    g = torch.Generator().manual_seed(3)
    center, tau = torch.tensor([-1.0, 0.5]), 0.7
    x = mix2d.marginal_sample(0.5, 4, generator=g)
    z = mix2d.posterior_sample(0.5, x.repeat_interleave(200_000, 0), generator=g)
    r = (-((z - center) ** 2).sum(1) / (2 * tau**2)).reshape(4, -1)
    mc = torch.logsumexp(r, 1) - math.log(r.shape[1])
    # Delta-method spread of log-mean-exp from the exact second moment E[e^{2r}].
    log_m1, log_m2 = mix2d.reward_moments(0.5, x, center, tau)
    sd = ((torch.exp(log_m2 - 2 * log_m1) - 1) / r.shape[1]).sqrt()
    assert ((mix2d.value(0.5, x, center, tau) - mc).abs() < 5 * sd + 1e-4).all()
    # At t = 0 the value is the constant log E[exp r(X_1)] = log Z of the tilt.
    v0 = mix2d.value(0.0, torch.randn(3, 2, generator=g), center, tau)
    assert float(v0.max() - v0.min()) < 1e-5


@pytest.mark.parametrize("t, t_next", [(0.0, 0.4), (0.3, 0.7), (0.6, 1.0)])
def test_exact_transition_preserves_marginals(mix2d, floor_threshold, t, t_next):
    g = torch.Generator().manual_seed(4)
    n = 1000
    x_next = mix2d.transition(t, t_next, mix2d.marginal_sample(t, n, generator=g), generator=g)
    thr = floor_threshold(lambda k, gg: mix2d.marginal_sample(t_next, k, generator=gg), n)
    assert energy_distance(x_next, mix2d.marginal_sample(t_next, n, generator=g)) < thr


def test_bad_inputs_raise(mix2d):
    with pytest.raises(ValueError, match="means must be"):
        GaussianMixtureFlow(torch.ones(2), torch.ones(2), torch.ones(2))
    with pytest.raises(ValueError, match="flatten"):
        mix2d.velocity(torch.zeros(3), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="t < t_next"):
        mix2d.transition(0.5, 0.4, torch.zeros(3, 2))
