"""Twisted SMC against the exact tilted mixture; value estimates; resampling; best-of-N at equal NFE."""

import math

import pytest
import torch

from ttfkit.align import best_of_n, estimate_value, make_reward, smc
from ttfkit.align.smc import effective_sample_size, systematic_resample
from ttfkit.align.testing import GaussianMixtureFlow, energy_distance

CENTER, TAU = torch.tensor([-1.0, 0.5]), 0.7


def _mix16() -> GaussianMixtureFlow:
    means = torch.randn(3, 16, generator=torch.Generator().manual_seed(5))
    return GaussianMixtureFlow(torch.tensor([0.5, 0.3, 0.2]), means, torch.tensor([0.6, 0.6, 0.6]))


@pytest.mark.parametrize("posterior", ["exact", "glass"])
def test_smc_matches_tilted_target_2d(mix2d, floor_threshold, posterior):
    g = torch.Generator().manual_seed(20)
    n = 1500
    reward = make_reward("quadratic", center=CENTER, tau=TAU)
    tilt = mix2d.tilt(CENTER, TAU)
    res = smc(mix2d, reward, n_particles=n, n_steps=10, shape=(2,), posterior=mix2d if posterior == "exact" else "glass",
              value_samples=16, inner_steps=8, generator=g)
    # SMC samples are correlated: the floor is taken at the run's own effective size (its smallest ESS).
    thr = floor_threshold(lambda k, gg: tilt.sample(k, generator=gg), min(res.ess), n)
    ed = energy_distance(res.samples, tilt.sample(n, generator=g))
    assert ed < thr
    assert energy_distance(mix2d.sample(n, generator=g), tilt.sample(n, generator=g)) > 50 * thr  # tilt is strong
    assert res.samples.shape == (n, 2) and len(res.ess) == 10
    assert res.nfe == (0 if posterior == "exact" else n * 9 * (1 + 16) * 8 + n * 8)


def test_smc_close_in_16d_and_beats_best_of_n_at_equal_nfe(floor_threshold):
    g = torch.Generator().manual_seed(21)
    mix, n = _mix16(), 800
    center = (mix.means[1] + mix.means[2]) / 2
    reward = make_reward("quadratic", center=center, tau=1.5)
    tilt = mix.tilt(center, 1.5)
    res = smc(mix, reward, n_particles=n, n_steps=10, shape=(16,), posterior="glass", value_samples=8,
              inner_steps=8, generator=g)
    steps = 20
    bon = best_of_n(mix, reward, n_candidates=int(res.nfe_per_sample // steps), n_samples=n, shape=(16,),
                    steps=steps, generator=g)
    assert bon.nfe <= res.nfe
    target = tilt.sample(n, generator=g)
    ed_smc, ed_bon = energy_distance(res.samples, target), energy_distance(bon.samples, target)
    ed_base = energy_distance(mix.sample(n, generator=g), target)
    thr = floor_threshold(lambda k, gg: tilt.sample(k, generator=gg), min(res.ess), n, repeats=10)
    assert min(res.ess) > n / 4  # the threshold is not made loose by a collapsed run
    assert ed_smc < thr, (ed_smc, thr)
    # best-of-N seeks the mode: at equal NFE it stays about as far from p_r as the base model
    assert ed_bon > 10 * ed_smc and ed_bon > 0.5 * ed_base


def test_smc_beats_best_of_n_in_2d(mix2d):
    g = torch.Generator().manual_seed(22)
    reward = make_reward("quadratic", center=CENTER, tau=TAU)
    target = mix2d.tilt(CENTER, TAU).sample(800, generator=g)
    res = smc(mix2d, reward, n_particles=800, n_steps=8, shape=(2,), value_samples=8, inner_steps=4, generator=g)
    bon = best_of_n(mix2d, reward, n_candidates=int(res.nfe_per_sample // 8), n_samples=800, shape=(2,), steps=8,
                    generator=g)
    assert bon.nfe <= res.nfe
    assert energy_distance(bon.samples, target) > 10 * max(energy_distance(res.samples, target), 1e-3)


def test_value_estimates_converge_to_exact_value(mix2d):
    g = torch.Generator().manual_seed(23)
    reward = make_reward("quadratic", center=CENTER, tau=TAU)
    t = 0.5
    x = mix2d.marginal_sample(t, 16, generator=g)
    exact = mix2d.value(t, x, CENTER, TAU)
    log_m1, log_m2 = mix2d.reward_moments(t, x, CENTER, TAU)
    rel_var = torch.exp(log_m2 - 2 * log_m1) - 1  # Var[e^r]/E[e^r]^2 per point
    errs = []
    for m in (1, 16, 256, 4096):
        v = estimate_value(mix2d, reward, t, x, value_samples=m, posterior=mix2d, generator=g)
        errs.append(float((v - exact).abs().mean()))
        if m >= 256:  # delta method: |V̂ - V| within 5 standard deviations (plus the O(1/M) Jensen bias)
            assert ((v - exact).abs() < 5 * (rel_var / m).sqrt() + rel_var / m).all()
    assert errs[0] > errs[1] > errs[2] > errs[3]
    # GLASS posterior samples give the same limit.
    v = estimate_value(mix2d, reward, t, x, value_samples=1024, posterior="glass", inner_steps=16, generator=g)
    assert ((v - exact).abs() < 5 * (rel_var / 1024).sqrt() + 0.02).all()


def test_reward_zero_leaves_the_model_distribution(mix2d, floor_threshold):
    g = torch.Generator().manual_seed(24)
    zero, n = make_reward("zero"), 1000
    thr = floor_threshold(lambda k, gg: mix2d.sample(k, generator=gg), n)
    res = smc(mix2d, zero, n_particles=n, n_steps=6, shape=(2,), value_samples=2, inner_steps=16, generator=g)
    assert res.resampled == [] and min(res.ess) == pytest.approx(n)
    assert res.n_distinct == n
    assert energy_distance(res.samples, mix2d.sample(n, generator=g)) < thr
    bon = best_of_n(mix2d, zero, n_candidates=4, n_samples=n, shape=(2,), steps=40, solver="midpoint", generator=g)
    assert energy_distance(bon.samples, mix2d.sample(n, generator=g)) < thr


def test_systematic_resampling_is_low_variance():
    g = torch.Generator().manual_seed(25)
    w = torch.tensor([0.1, 0.25, 0.05, 0.6], dtype=torch.float64)
    for _ in range(20):
        idx = systematic_resample(w.log(), 40, generator=g)
        counts = torch.bincount(idx, minlength=4).double()
        assert ((counts - 40 * w).abs() < 1 + 1e-9).all()  # each count is floor or ceil of N·w
    assert effective_sample_size(torch.zeros(7, dtype=torch.float64)) == pytest.approx(7)
    assert effective_sample_size(torch.tensor([0.0, -math.inf, -math.inf])) == pytest.approx(1)


def test_smc_is_seeded_and_validates(mix2d):
    reward = make_reward("quadratic", center=CENTER, tau=TAU)
    kw = dict(n_particles=64, n_steps=4, shape=(2,), value_samples=2, inner_steps=2)
    a = smc(mix2d, reward, **kw, generator=torch.Generator().manual_seed(7)).samples
    b = smc(mix2d, reward, **kw, generator=torch.Generator().manual_seed(7)).samples
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="ess_threshold"):
        smc(mix2d, reward, **kw, ess_threshold=2.0)
    with pytest.raises(ValueError, match="posterior"):
        smc(mix2d, reward, **{**kw, "n_steps": 2}, posterior="nope")


def test_smc_counts_one_nfe_per_diamond_call(mix2d):
    from ttfkit.align.diamond import DiamondMap, MLPPhi

    torch.manual_seed(0)
    dmap = DiamondMap(MLPPhi(2, hidden=8, depth=1))
    res = smc(mix2d, make_reward("zero"), n_particles=10, n_steps=4, shape=(2,), posterior=dmap, value_samples=3,
              generator=torch.Generator().manual_seed(0))
    assert res.nfe == 10 * 4 + 10 * 3 * 3  # one call per transition and per value sample


def test_smc_final_max_returns_the_best_final_particles_of_the_same_run(mix2d):
    """final="max" changes only the last selection: the same seeded run, the highest-reward final particles."""
    quad = make_reward("quadratic", center=CENTER, tau=TAU)
    calls = []

    def reward(x, ctx):
        calls.append(x.clone())
        return quad(x, ctx)

    kw = dict(n_particles=32, n_steps=4, shape=(2,), value_samples=2, inner_steps=2, n_samples=3)
    sampled = smc(mix2d, reward, **kw, generator=torch.Generator().manual_seed(3))
    final_sampled = calls[-1]
    calls.clear()
    best = smc(mix2d, reward, **kw, final="max", generator=torch.Generator().manual_seed(3))
    final = calls[-1]
    torch.testing.assert_close(final, final_sampled)  # same particles up to the last selection
    r = quad(final, None)
    top = torch.argsort(r, descending=True)[:3]
    torch.testing.assert_close(best.samples, final[top])
    torch.testing.assert_close(best.rewards, r[top].float())
    assert best.rewards[0] >= sampled.rewards.max()  # the draw from the weights cannot beat the top particle
    with pytest.raises(ValueError, match="final"):
        smc(mix2d, reward, **kw, final="best")
