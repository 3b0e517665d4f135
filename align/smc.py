"""Twisted sequential Monte Carlo for p_r(x) ∝ p(x)·exp(r(x)) with stochastic flow transitions.

Methods note, "Inference-time alignment"; Diamond Maps (arXiv 2602.05993) and GLASS (2509.25170).
Convention: t = 0 noise, t = 1 data, uniform grid t_0 = 0 < t_1 < ... < t_K = 1.

Particles start at noise and move by the stochastic transition p(x_t' | x_t) (GLASS, a Diamond Map, or an
exact posterior object). At each intermediate time the potential is the value estimate
V̂_t(x) = logsumexp_j r(z_j) - log M with z_j ~ p(x_1 | x_t) (M = ``value_samples``), optionally scaled by
``twist_scale``; log-weights accumulate V̂(x_t') - V̂(x_t) (the particle's own stored V̂, carried through
resampling), and the last step (t' = 1, a posterior sample) adds r(x_1) - V̂(x_{t_{K-1}}). The product of
increments telescopes to exp(r(x_1)) times terms that do not depend on the path, so the sampler is
consistent for p_r for any value estimate. Systematic resampling whenever ESS < ``ess_threshold``·N;
otherwise weights are carried. The final equally weighted samples are a systematic resample.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ttfkit.align import _posterior
from ttfkit.align._ode import expand_cond
from ttfkit.align.result import AlignResult, count_distinct

__all__ = ["smc", "estimate_value", "systematic_resample", "effective_sample_size", "FINAL_SELECTIONS"]

FINAL_SELECTIONS = ("sample", "max")  # how smc() picks its output from the final particles (``final``)


def smc(
    model,
    reward,
    *,
    n_particles: int,
    n_steps: int,
    shape: tuple[int, ...],
    cond=None,
    posterior="glass",
    value_samples: int = 8,
    inner_steps: int = 8,
    ess_threshold: float = 0.5,
    twist_scale: float = 1.0,
    n_samples: int | None = None,
    final: str = "sample",
    reward_context=None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> AlignResult:
    """Run twisted SMC; returns ``n_samples`` (default n_particles) equally weighted samples (n, *shape).

    Args:
        model: flow model (``velocity(t, x, cond)``), used by ``posterior="glass"``.
        reward: ``reward(x1 (B, *shape), context) -> (B,)``; black-box (no gradients needed).
        n_particles: N. n_steps: K transitions from t = 0 to 1.
        posterior: "glass" (``inner_steps`` NFE per transition and per value sample), a
            :class:`~ttfkit.align.diamond.DiamondMap` (1 NFE each), or an object with
            ``posterior_sample``/``transition`` (e.g. the exact fixture; its calls are not counted).
        value_samples: M posterior samples per particle and step for V̂.
        ess_threshold: resample when ESS < ess_threshold·N (1.0: every step, 0.0: never).
        twist_scale: multiplies the intermediate potentials (a "temperature" on values; 1 = exact twist).
        cond: one context (leading dim 1) for the model, or None; reward_context defaults to cond.
        final: "sample" draws the output from the final importance weights (a sample of p·exp(r));
            "max" returns the ``n_samples`` final particles with the highest reward (greedy selection, as
            best-of-N does, over particles that SMC steered: for picking one good chunk, not for sampling).
    NFE (rows): per step N·(transition + M·posterior sample), the last step only N·transition.
    """
    if n_particles < 1 or n_steps < 1 or value_samples < 1:
        raise ValueError(f"need n_particles, n_steps, value_samples >= 1, got {n_particles}, {n_steps}, {value_samples}")
    if not 0.0 <= ess_threshold <= 1.0:
        raise ValueError(f"ess_threshold must be in [0, 1], got {ess_threshold}")
    if final not in FINAL_SELECTIONS:
        raise ValueError(f"final must be one of {FINAL_SELECTIONS}, got {final!r}")
    post, counters = _posterior.resolve(model, posterior, inner_steps)
    ctx = cond if reward_context is None else reward_context
    n = n_particles
    cond_rows = expand_cond(cond, n)
    grid = torch.linspace(0.0, 1.0, n_steps + 1, dtype=torch.float64).tolist()
    x = torch.randn((n, *shape), generator=generator, dtype=dtype, device=device)  # state at t = 0
    logw = torch.zeros(n, dtype=torch.float64, device=device)
    v_prev = torch.zeros(n, dtype=torch.float64, device=device)
    ess_hist: list[float] = []
    resampled: list[int] = []
    with torch.no_grad():
        for k in range(n_steps):
            x = post.transition(grid[k], grid[k + 1], x, cond_rows, generator=generator)
            if k < n_steps - 1:
                v = twist_scale * _value(post, reward, grid[k + 1], x, cond, ctx, value_samples, generator)
            else:
                v = reward(x, ctx).to(torch.float64)
            logw = logw + v - v_prev
            v_prev = v
            ess = effective_sample_size(logw)
            ess_hist.append(ess)
            if k < n_steps - 1 and ess < ess_threshold * n:
                idx = systematic_resample(logw, n, generator=generator)
                x, v_prev = x[idx], v_prev[idx]
                logw = torch.zeros_like(logw)
                resampled.append(k)
        n_out = n if n_samples is None else n_samples
        log_norm = logw - torch.logsumexp(logw, 0)
        if final == "max":  # v_prev holds the final rewards r(x_1)
            idx = torch.argsort(v_prev, descending=True, stable=True)[: min(n_out, n)]
        else:
            idx = systematic_resample(logw, n_out, generator=generator)
    samples = x[idx]
    return AlignResult(samples=samples, nfe=sum(c.evals for c in counters), rewards=v_prev[idx].float(),
                       ess=ess_hist, n_distinct=count_distinct(samples), resampled=resampled,
                       log_weights=log_norm)


def estimate_value(
    model,
    reward,
    t: float,
    x: Tensor,
    *,
    value_samples: int,
    cond=None,
    posterior="glass",
    inner_steps: int = 8,
    reward_context=None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """V̂_t(x) = logsumexp_j r(z_j) - log M, z_j ~ p(x_1 | x_t = x) (M = value_samples); (N,) float64.

    Biased low for small M (Jensen), consistent as M grows. ``posterior`` as in :func:`smc`.
    """
    post, _ = _posterior.resolve(model, posterior, inner_steps)
    ctx = cond if reward_context is None else reward_context
    with torch.no_grad():
        return _value(post, reward, t, x, cond, ctx, value_samples, generator)


def effective_sample_size(logw: Tensor) -> float:
    """ESS = (Σw)²/Σw² of unnormalised log-weights (N,)."""
    return float(torch.exp(2 * torch.logsumexp(logw, 0) - torch.logsumexp(2 * logw, 0)))


def systematic_resample(logw: Tensor, n_out: int, *, generator: torch.Generator | None = None) -> Tensor:
    """Indices (n_out,) drawn by systematic resampling from unnormalised log-weights (N,)."""
    w = torch.softmax(logw.to(torch.float64), 0)
    cdf = torch.cumsum(w, 0)
    cdf[-1] = 1.0
    u0 = torch.rand((), generator=generator, dtype=torch.float64).to(cdf.device)
    positions = (torch.arange(n_out, dtype=torch.float64, device=cdf.device) + u0) / n_out
    return torch.searchsorted(cdf, positions, right=True).clamp_max(w.shape[0] - 1)


def _value(post, reward, t: float, x: Tensor, cond, ctx, m: int, generator) -> Tensor:
    n = x.shape[0]
    xs = x.repeat_interleave(m, dim=0)  # (N·M, ...)
    z = post.posterior_sample(t, xs, expand_cond(cond, n * m), generator=generator)
    r = reward(z, ctx).to(torch.float64).reshape(n, m)
    return torch.logsumexp(r, dim=1) - math.log(m)
