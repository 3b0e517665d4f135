"""Weighted Diamond Maps: value-gradient guidance whose ∇V comes from renoised, flow-map-jumped, reward-weighted
candidates (the fourth sampler of Holderrieth et al., "Diamond Maps", arXiv 2602.05993, written for a plain
flow map x_t' -> x_1 rather than a posterior map).

Convention: x_t = (1-t)·x_0 + t·x_1, t = 0 noise, t = 1 data; lam(t) = (t/(1-t))², g = 1/lam.
At the current guided-ODE state (t, x), each of M candidates j:

1. renoise to the noisier time t' with lam(t') = lam(t)/snr_factor by the exact forward kernel, in view space
   x'/t' = x/t + sqrt(g(t') - g(t))·eps_j (reparameterised, so x'_j is differentiable in x);
2. jumps with one flow-map call to z_j = Phi(t', x'_j) (a deterministic map t' -> 1);
3. gets the log-weight  l_j = r(z_j) + log N(x; t·z_j, (1-t)² I) + log p_t'(x'_j) - log p_t(x) + |eps_j|²/2,
   the reward plus the log importance ratio p(z | x)/q(z | x) of the jumped candidate (the flow map's Jacobian
   cancels between p_1 and the pushed-forward proposal).

Then V̂ = logsumexp_j l_j - log M is a consistent (self-normalised) estimate of V_t(x) = log E[e^r | x_t = x], and
its gradient, Σ_j softmax(l)_j ∇l_j, combines the reward, likelihood and score terms of the official code.
The official code then rescales each term to unit length and uses the reward alone as logits; that heuristic
does not sample p ∝ p·e^r on an exact fixture and is not done here. The sampler is :func:`guided_sample` with
this ∇V: :func:`weighted_diamond_sample`.

log p_t'(x') - log p_t(x) comes from ``log_density(t, x) -> (N,)`` when known (exact fixtures), else from the
model's scores s = (t·u - x)/(1-t): value by the trapezoid rule ½(s_t(x) + s_t'(x'))·(x' - x) (as the official
code), gradient exactly (t'/t)·s_t'(x') - s_t(x).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ttfkit.align.glass import _bcast
from ttfkit.align.guidance import _repeat_rows, guided_sample
from ttfkit.align.result import AlignResult

__all__ = ["WeightedDiamondValueGrad", "weighted_diamond_sample", "renoise_time", "ode_flow_map"]


def renoise_time(t: Tensor, snr_factor: float) -> Tensor:
    """t' with lam(t') = lam(t)/snr_factor (t' <= t; t' = t for snr_factor = 1), elementwise."""
    root = t / (1 - t) / math.sqrt(snr_factor)
    return root / (1 + root)


class WeightedDiamondValueGrad:
    """∇_x V̂_t(x) from M renoised, jumped and importance-weighted candidates per row (module docstring).

    Args:
        model: flow model ``velocity(t, x, cond)`` (scores for the density term when ``log_density`` is None).
        flow_map: ``flow_map(t' (N,), x' (N, ...), cond) -> x_1 (N, ...)``, one network call, differentiable in x'.
        reward: differentiable ``reward(x1, context) -> (N,)``.
        n_particles: M. snr_factor: > 1, how much signal-to-noise the renoising removes.
        log_density: optional exact ``log p_t(x)`` ``(t (N,), x) -> (N,)``, differentiable in x.
        reward_context: passed to the reward (defaults to the cond rows). generator: renoising noise.
        flow_map_nfe: network calls per row of one ``flow_map`` call (1 for a distilled map, k for
            :func:`ode_flow_map` with k steps).
    Attribute ``nfe``: network calls so far (flow-map calls, plus model calls for scores), counted per row.
    """

    def __init__(self, model, flow_map: Callable, reward, *, n_particles: int = 8, snr_factor: float = 4.0,
                 log_density: Callable | None = None, reward_context=None,
                 generator: torch.Generator | None = None, flow_map_nfe: int = 1) -> None:
        if getattr(reward, "differentiable", True) is False:
            raise ValueError(f"Weighted Diamond Maps need a differentiable reward, {type(reward).__name__} is not")
        if n_particles < 1:
            raise ValueError(f"n_particles must be >= 1, got {n_particles}")
        if not snr_factor > 1.0:
            raise ValueError(f"snr_factor must be > 1 (renoising must add noise), got {snr_factor}")
        self.model, self.flow_map, self.reward, self.m = model, flow_map, reward, n_particles
        self.snr_factor, self.log_density, self.reward_context = snr_factor, log_density, reward_context
        self.generator = generator
        self.flow_map_nfe = flow_map_nfe
        self.nfe = 0

    def __call__(self, t: Tensor, x: Tensor, cond=None) -> Tensor:
        n, m = x.shape[0], self.m
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            xs = xg.repeat_interleave(m, dim=0)  # (N·M, ...)
            ts = t.repeat_interleave(m, dim=0).to(x)  # (N·M,)
            tp = renoise_time(ts, self.snr_factor)
            tb, tpb = _bcast(ts, xs), _bcast(tp, xs)
            eps = torch.randn(xs.shape, generator=self.generator, dtype=x.dtype, device=x.device)
            spread = ((1 - tpb) ** 2 / tpb**2 - (1 - tb) ** 2 / tb**2).clamp_min(0).sqrt()
            x_re = tpb * (xs / tb + spread * eps)  # (N·M, ...) ~ q(x_t' | x_t)
            cs = None if cond is None else _repeat_rows(cond, m)
            z = self.flow_map(tp, x_re, cs)
            self.nfe += xs.shape[0] * self.flow_map_nfe
            ctx = cs if self.reward_context is None else self.reward_context
            log_lik = -((xs - tb * z) ** 2).flatten(1).sum(1) / (2 * (1 - ts) ** 2)
            logit = self.reward(z, ctx).reshape(-1) + log_lik + self._density_term(ts, xs, tp, x_re, cs)
            logit = logit + 0.5 * eps.flatten(1).pow(2).sum(1)
            v = torch.logsumexp(logit.reshape(n, m), dim=1)
            (grad,) = torch.autograd.grad(v.sum(), xg)
        return grad

    def _density_term(self, t: Tensor, x: Tensor, tp: Tensor, x_re: Tensor, cond) -> Tensor:
        """log p_t'(x') - log p_t(x) (N·M,), differentiable in x (through x' as well)."""
        if self.log_density is not None:
            return self.log_density(tp, x_re) - self.log_density(t, x)
        with torch.no_grad():
            s_t = _score(self.model, t, x.detach(), cond)
            s_tp = _score(self.model, tp, x_re.detach(), cond)
        self.nfe += 2 * x.shape[0]
        value = (0.5 * (s_t + s_tp) * (x_re.detach() - x.detach())).flatten(1).sum(1)
        # exact gradient (t'/t)·s_t'(x') - s_t(x), carried by x' and x (d x'/d x = t'/t)
        surrogate = (s_tp * x_re).flatten(1).sum(1) - (s_t * x).flatten(1).sum(1)
        return value + surrogate - surrogate.detach()


def weighted_diamond_sample(model, flow_map: Callable, reward, *, n_samples: int, shape: tuple[int, ...],
                            n_particles: int = 8, snr_factor: float = 4.0, log_density: Callable | None = None,
                            cond=None, steps: int = 20, solver: str = "midpoint", scale=1.0, reward_context=None,
                            generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                            device: torch.device | str = "cpu") -> AlignResult:
    """Weighted Diamond Maps: :func:`guided_sample` with :class:`WeightedDiamondValueGrad`.

    NFE per sample: one velocity call per drift evaluation (steps·2 for midpoint) plus n_particles flow-map calls
    per guided one (all but the one at t = 0); without ``log_density`` each guided one adds 2·n_particles score
    calls.
    """
    vg = WeightedDiamondValueGrad(model, flow_map, reward, n_particles=n_particles, snr_factor=snr_factor,
                                  log_density=log_density, reward_context=reward_context, generator=generator)
    return guided_sample(model, vg, n_samples=n_samples, shape=shape, cond=cond, steps=steps, solver=solver,
                         scale=scale, reward=reward, reward_context=reward_context, generator=generator,
                         dtype=dtype, device=device)


def ode_flow_map(model, steps: int) -> Callable:
    """``flow_map(t (N,), x (N, ...), cond) -> x_1``: ``steps`` Euler steps of the model's ODE from each row's t to 1,
    differentiable in x. It stands in for a distilled flow map (ttfkit distils posterior Diamond Maps, which
    are stochastic and not the deterministic map this sampler needs), at ``steps`` network calls per jump."""
    if steps < 1:
        raise ValueError(f"ode_flow_map needs steps >= 1, got {steps}")

    def flow_map(t: Tensor, x: Tensor, cond=None) -> Tensor:
        h = (1 - t) / steps  # (N,)
        for k in range(steps):
            x = x + _bcast(h, x) * model.velocity(t + k * h, x, cond)
        return x

    return flow_map


def _score(model, t: Tensor, x: Tensor, cond) -> Tensor:
    tb = _bcast(t, x)
    return (tb * model.velocity(t, x, cond) - x) / (1 - tb)
