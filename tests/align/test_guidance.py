"""Guidance: the exact ∇V reproduces the tilted target (checks u + ((1-t)/t)∇V); posterior ∇V estimates."""

import pytest
import torch

from ttfkit.align import PosteriorValueGrad, guided_sample, make_reward
from ttfkit.align.testing import energy_distance

CENTER, TAU = torch.tensor([-1.0, 0.5]), 0.7


def test_exact_value_gradient_reproduces_tilted_target(mix2d, floor_threshold):
    g = torch.Generator().manual_seed(30)
    n = 1000
    tilt = mix2d.tilt(CENTER, TAU)
    res = guided_sample(mix2d, lambda t, x, c: mix2d.value_grad(t, x, CENTER, TAU), n_samples=n, shape=(2,),
                        steps=20, generator=g, reward=make_reward("quadratic", center=CENTER, tau=TAU))
    thr = floor_threshold(lambda k, gg: tilt.sample(k, generator=gg), n)
    assert energy_distance(res.samples, tilt.sample(n, generator=g)) < thr
    assert res.nfe == n * 40  # midpoint: 2 velocity calls per step
    # A wrong drift factor (t instead of (1-t)/t) misses the target by far: the check has power.
    wrong = guided_sample(mix2d, lambda t, x, c: mix2d.value_grad(t, x, CENTER, TAU) * (t[:, None] ** 2 / (1 - t[:, None])),
                          n_samples=n, shape=(2,), steps=20, generator=g)
    assert energy_distance(wrong.samples, tilt.sample(n, generator=g)) > 10 * thr


def test_zero_scale_and_zero_reward_give_model_samples(mix2d, floor_threshold):
    g = torch.Generator().manual_seed(31)
    n = 1000
    thr = floor_threshold(lambda k, gg: mix2d.sample(k, generator=gg), n)
    vg = lambda t, x, c: mix2d.value_grad(t, x, CENTER, TAU)  # noqa: E731
    off = guided_sample(mix2d, vg, n_samples=n, shape=(2,), steps=20, scale=lambda t: 0.0, generator=g)
    assert energy_distance(off.samples, mix2d.sample(n, generator=g)) < thr
    zero = PosteriorValueGrad(mix2d, make_reward("zero"), posterior=mix2d, value_samples=2, generator=g)
    res = guided_sample(mix2d, zero, n_samples=n, shape=(2,), steps=20, generator=g)
    assert energy_distance(res.samples, mix2d.sample(n, generator=g)) < thr


def test_posterior_value_grad_converges_to_exact_gradient(mix2d):
    # Reparameterised GLASS posterior samples (differentiable in x_t); many samples -> the exact ∇V.
    g = torch.Generator().manual_seed(32)
    reward = make_reward("quadratic", center=CENTER, tau=TAU)
    x = mix2d.marginal_sample(0.7, 6, generator=g)
    t = torch.full((6,), 0.7)
    vg = PosteriorValueGrad(mix2d, reward, posterior="glass", value_samples=4000, inner_steps=16, generator=g)
    est = vg(t, x)
    exact = mix2d.value_grad(t, x, CENTER, TAU).float()
    assert vg.nfe == 6 * 4000 * 16
    torch.testing.assert_close(est, exact, atol=0.15, rtol=0.05)


def test_non_differentiable_reward_is_rejected(mix2d):
    box = make_reward("keep_out", low=[0, 0, 0], high=[1, 1, 1], hard=True)
    with pytest.raises(ValueError, match="differentiable"):
        PosteriorValueGrad(mix2d, box)
