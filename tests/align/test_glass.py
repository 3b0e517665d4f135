"""GLASS transitions and posterior samples against the exact mixture (energy distance vs noise floor)."""

import pytest
import torch

from ttfkit.align import glass
from ttfkit.align.testing import energy_distance

N = 1000


@pytest.mark.parametrize("t, t_next", [(0.0, 0.5), (0.3, 0.7), (0.6, 0.9), (0.5, 1.0)])
def test_transitions_preserve_marginals(mix2d, floor_threshold, t, t_next):
    g = torch.Generator().manual_seed(10)
    x_t = mix2d.marginal_sample(t, N, generator=g)
    x_next = glass.transition(mix2d, t, t_next, x_t, inner_steps=16, generator=g)
    thr = floor_threshold(lambda k, gg: mix2d.marginal_sample(t_next, k, generator=gg), N)
    assert energy_distance(x_next, mix2d.marginal_sample(t_next, N, generator=g)) < thr


def test_transition_matches_exact_kernel_at_fixed_x(mix2d, floor_threshold):
    # Stronger than marginals: the conditional law p(x_t' | x_t) itself, for one x_t.
    g = torch.Generator().manual_seed(11)
    x_t = torch.tensor([[0.2, 0.3]]).expand(N, 2)
    x_next = glass.transition(mix2d, 0.3, 0.7, x_t, inner_steps=32, generator=g)
    thr = floor_threshold(lambda k, gg: mix2d.transition(0.3, 0.7, x_t[:k], generator=gg), N)
    assert energy_distance(x_next, mix2d.transition(0.3, 0.7, x_t, generator=g)) < thr


@pytest.mark.parametrize("t, point", [(0.2, (-1.0, 0.0)), (0.5, (0.2, 0.3)), (0.8, (1.0, 0.5))])
def test_posterior_samples_match_exact_posterior(mix2d, floor_threshold, t, point):
    g = torch.Generator().manual_seed(12)
    x_t = torch.tensor([point]).expand(N, 2)
    z = glass.posterior_sample(mix2d, t, x_t, inner_steps=32, generator=g)
    thr = floor_threshold(lambda k, gg: mix2d.posterior_sample(t, x_t[:k], generator=gg), N)
    assert energy_distance(z, mix2d.posterior_sample(t, x_t, generator=g)) < thr


def test_error_shrinks_with_inner_steps(mix2d):
    g = torch.Generator().manual_seed(13)
    x_t = torch.tensor([[0.2, 0.3]]).expand(4000, 2)
    exact = mix2d.posterior_sample(0.3, x_t, generator=g)
    errs = [energy_distance(glass.posterior_sample(mix2d, 0.3, x_t, inner_steps=k, generator=g), exact) for k in (1, 4, 32)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[0] > 0.05  # one Euler step is visibly wrong, so the comparison has power


def test_early_stop_time_adds_precisions():
    t, t_next = torch.tensor([0.0, 0.2, 0.5, 0.9]), torch.tensor([0.3, 0.6, 0.7, 0.95])
    s = glass.early_stop_time(t, t_next)
    lam = lambda u: (u / (1 - u)) ** 2  # noqa: E731
    torch.testing.assert_close(lam(s), lam(t_next) - lam(t))
    assert float(glass.early_stop_time(torch.tensor([0.4]), torch.tensor([1.0]))) == 1.0


def test_posterior_velocity_is_exact_for_exact_denoiser(mix2d):
    # With the exact model, ẑ = E[x_1 | x_t, x̄_s]: compare with the Gaussian conjugate update of the
    # exact posterior p(x_1 | x_t) (a mixture) given the extra view x̄_s/s = x_1 + noise of var g(s).
    t, s = 0.4, 0.3
    x_t, xbar = torch.tensor([[0.5, -0.2]], dtype=torch.float64), torch.tensor([[0.1, 0.4]], dtype=torch.float64)
    m64 = type(mix2d)(mix2d.weights.double(), mix2d.means.double(), mix2d.stds.double())
    mean, var, resp = m64._posterior_components(t, x_t)  # (1, K, D), (1, K), (1, K)
    gs = ((1 - s) / s) ** 2
    y = xbar / s
    # component-wise: prior N(mean_k, var_k), obs y ~ N(x_1, gs); evidence N(y; mean_k, var_k + gs)
    logev = resp.log() - ((y[:, None] - mean) ** 2).sum(-1) / (2 * (var + gs)) - torch.log(var + gs)
    post_w = torch.softmax(logev, 1)
    post_mean = (mean / var[..., None] + y[:, None] / gs) / (1 / var + 1 / gs)[..., None]
    z_ref = (post_w[..., None] * post_mean).sum(1)
    torch.testing.assert_close(glass.posterior_denoiser(m64, t, x_t, s, xbar), z_ref)


def test_noise_argument_makes_samples_deterministic_and_differentiable(mix2d):
    x = torch.randn(8, 2, requires_grad=True)
    e = torch.randn(8, 2)
    z1 = glass.posterior_sample(mix2d, 0.5, x, inner_steps=4, noise=e)
    z2 = glass.posterior_sample(mix2d, 0.5, x, inner_steps=4, noise=e)
    torch.testing.assert_close(z1, z2)
    (grad,) = torch.autograd.grad(z1.sum(), x)
    assert grad.abs().sum() > 0
    with pytest.raises(ValueError, match="t < t_next"):
        glass.transition(mix2d, 0.5, 0.5, x.detach())
