"""Weighted Diamond Maps on the exact mixture: the renoise-jump-weight estimate of ∇V is consistent, its score
fallback has the exact gradient, and the guided sampler moves the base distribution onto the tilted target.

The flow map here is a fine midpoint ODE of the exact velocity (what a perfectly distilled map computes); it is
counted as one call, as a distilled map would be.
"""

import pytest
import torch

from ttfkit.align import make_reward
from ttfkit.align.testing import GaussianMixtureFlow, energy_distance
from ttfkit.align.weighted import WeightedDiamondValueGrad, ode_flow_map, renoise_time, weighted_diamond_sample

CENTER, TAU = torch.tensor([-1.0, 0.5]), 0.7


def _ode_map(model, steps: int):
    def flow_map(tp, x, cond=None):
        h = ((1 - tp) / steps).reshape(-1, *([1] * (x.ndim - 1)))
        for k in range(steps):
            tk = tp + k * h.reshape(-1)
            v = model.velocity(tk, x)
            x = x + h * model.velocity(tk + h.reshape(-1) / 2, x + h / 2 * v)
        return x

    return flow_map


def test_renoise_time_divides_the_signal_to_noise_ratio():
    t = torch.tensor([0.1, 0.5, 0.9])
    tp = renoise_time(t, 4.0)
    torch.testing.assert_close((tp / (1 - tp)) ** 2, (t / (1 - t)) ** 2 / 4)
    torch.testing.assert_close(renoise_time(t, 1.0), t)


def test_estimate_converges_to_the_exact_value_gradient(mix2d):
    g = torch.Generator().manual_seed(50)
    reward = make_reward("quadratic", center=CENTER, tau=TAU)
    x = mix2d.marginal_sample(0.7, 6, generator=g)
    t = torch.full((6,), 0.7)
    vg = WeightedDiamondValueGrad(mix2d, _ode_map(mix2d, 32), reward, n_particles=4000, snr_factor=2.0,
                                  log_density=mix2d.marginal_log_prob, generator=g)
    est, exact = vg(t, x), mix2d.value_grad(t, x, CENTER, TAU).float()
    assert vg.nfe == 6 * 4000
    # measured max error 0.14 at |∇V| up to 3.9
    torch.testing.assert_close(est, exact, atol=0.3, rtol=0.05)


def test_score_fallback_has_the_exact_density_gradient(mix2d):
    # Without log_density the density term's gradient is (t'/t)·s_t'(x') - s_t(x) from the model's velocity;
    # on the exact fixture that is the gradient of log p_t'(x'(x)) - log p_t(x).
    g = torch.Generator().manual_seed(51)
    vg = WeightedDiamondValueGrad(mix2d, _ode_map(mix2d, 4), make_reward("zero"), snr_factor=3.0)
    t = torch.full((5,), 0.6)
    tp = renoise_time(t, 3.0)
    x = mix2d.marginal_sample(0.6, 5, generator=g).requires_grad_(True)
    eps = torch.randn(5, 2, generator=g)
    x_re = tp[:, None] * (x / t[:, None] + ((1 - tp) ** 2 / tp**2 - (1 - t) ** 2 / t**2).sqrt()[:, None] * eps)
    (fallback,) = torch.autograd.grad(vg._density_term(t, x, tp, x_re, None).sum(), x, retain_graph=True)
    exact_term = mix2d.marginal_log_prob(tp, x_re) - mix2d.marginal_log_prob(t, x)
    (exact,) = torch.autograd.grad(exact_term.sum(), x)
    torch.testing.assert_close(fallback, exact.float(), atol=1e-4, rtol=1e-4)


def test_weighted_sampler_moves_onto_the_tilted_target(mix2d):
    # Measured (n = 1000, 10 midpoint steps, 8 particles): energy distance 0.32-0.39 to the tilted target versus
    # 2.0 for the base model; best-of-N at equal NFE reaches 0.02-0.09 on this mild tilt (see
    # docs/results/2026-11-30/diamond): the estimate is noisy at small t, where the guidance factor (1-t)/t is large.
    g = torch.Generator().manual_seed(52)
    n = 1000
    tilt = mix2d.tilt(CENTER, TAU)
    reward = make_reward("quadratic", center=CENTER, tau=TAU)
    res = weighted_diamond_sample(mix2d, _ode_map(mix2d, 8), reward, n_samples=n, shape=(2,), n_particles=8,
                                  snr_factor=1.5, log_density=mix2d.marginal_log_prob, steps=10, generator=g)
    assert res.nfe == n * (20 + 19 * 8)  # 20 velocity calls; the one at t = 0 is unguided
    target = tilt.sample(n, generator=g)
    base = energy_distance(mix2d.sample(n, generator=g), target)
    assert energy_distance(res.samples, target) < 0.3 * base


def test_bad_arguments():
    reward = make_reward("zero")
    with pytest.raises(ValueError, match="snr_factor"):
        WeightedDiamondValueGrad(None, None, reward, snr_factor=1.0)
    with pytest.raises(ValueError, match="n_particles"):
        WeightedDiamondValueGrad(None, None, reward, n_particles=0)


def test_ode_flow_map_matches_the_closed_form_gaussian_flow_map():
    # One Gaussian N(mu, s² I): x_t = t x_1 + (1-t) x_0 is Gaussian too, and the ODE keeps the standardised
    # coordinate fixed, so x_1 = mu + s (x_t - t mu) / sqrt(t² s² + (1-t)²).
    mu, s = torch.tensor([[1.0, -2.0]], dtype=torch.float64), 0.5
    flow = GaussianMixtureFlow(torch.ones(1), mu, torch.tensor([s], dtype=torch.float64))
    t = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    x = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    tb = t[:, None]
    exact = mu + s * (x - tb * mu) / (tb**2 * s**2 + (1 - tb) ** 2).sqrt()
    err = {k: float((ode_flow_map(flow, k)(t, x) - exact).abs().max()) for k in (2, 200, 400)}
    assert err[400] < 5e-3 and err[400] < 0.6 * err[200]  # Euler converges to the exact map at first order
    assert err[2] > 1e-2  # two Euler steps are not the exact map: the comparison can fail
    with pytest.raises(ValueError, match="steps"):
        ode_flow_map(flow, 0)


def test_aligned_policy_weighted_is_the_weighted_sampler_on_the_policy_flow(tiny_policy):
    """AlignedPolicy(method="weighted") plans exactly weighted_diamond_sample's chunk with the policy's velocity and an
    Euler flow map written here, on the policy's normalised actions, and guidance moves the chunk."""
    from ttfkit.align.critic import ChunkCritic, CriticReward
    from ttfkit.align.policy import AlignConfig, AlignedPolicy

    torch.manual_seed(3)
    critic = ChunkCritic(tiny_policy.encoder.out_dim, 8, 4, hidden=16, members=2)
    reward = CriticReward(critic, tiny_policy)
    obs = {"agent_pos": torch.randn(1, 2, 4), "environment_state": torch.randn(1, 2, 17)}
    cfg = AlignConfig(method="weighted", particles=3, steps=4, snr_factor=2.0, flow_map_steps=2, guidance_scale=5.0)
    aligned = AlignedPolicy(tiny_policy, reward, cfg, generator=torch.Generator().manual_seed(7))
    chunk = aligned.plan_chunks(obs, [0])[0]
    assert aligned.summary()["nfe_per_chunk"] == 4 + 3 * 3 * (2 + 2)  # unguided t = 0; M x (2 map + 2 score) calls

    def euler_map(tp, x, cond):
        for k in range(2):
            h = (1 - tp) / 2
            x = x + h[:, None, None] * tiny_policy.velocity(tp + k * h, x, cond)
        return x

    cond = tiny_policy.encode_obs_blocks(obs)
    key = tiny_policy.config.action_key

    def env_reward(x, ctx):
        return reward(tiny_policy._unnormalize(key, x), ctx)

    ctx = aligned._context(obs, cond, 0, 0)
    want = weighted_diamond_sample(tiny_policy, euler_map, env_reward, n_samples=1, shape=(8, 4), n_particles=3,
                                   snr_factor=2.0, cond=cond, steps=4, solver="euler", scale=5.0, reward_context=ctx,
                                   generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(chunk, tiny_policy._unnormalize(key, want.samples)[0])
    plain = AlignedPolicy(tiny_policy, reward, AlignConfig(method="none", steps=4),
                          generator=torch.Generator().manual_seed(7)).plan_chunks(obs, [0])[0]
    assert (chunk - plain).abs().max() > 1e-3
    with pytest.raises(ValueError, match="snr_factor"):
        AlignConfig(method="weighted", snr_factor=1.0)
