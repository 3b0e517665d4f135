"""Value-gradient guidance: the Doob drift u_r(t, x) = u(t, x) + ((1-t)/t)·∇V_t(x) on the linear path.

Methods note, "Inference-time alignment". With x_t = (1-t)·x_0 + t·x_1 the score of the tilted marginal
p_t·exp(V_t)/Z is s + ∇V_t and u = (x + (1-t)·s)/t, so the tilted velocity adds ((1-t)/t)·∇V_t; the ODE
from N(0, I) at t = 0 then ends at p_r ∝ p·exp(r) (exact for the exact ∇V).

∇V comes from a callable ``value_grad(t (N,), x, cond) -> (N, ...)``: exact (fixture) or
:class:`PosteriorValueGrad`, which differentiates V̂ = logsumexp_j r(X_θ(e_j | x, t)) - log M through
reparameterised posterior samples (a Diamond Map: one NFE per sample; or GLASS: inner_steps NFE), i.e.
∇V̂ = Σ_j softmax(r)_j ∇_x r(X_θ(e_j | x, t)). The estimate is noisy at small t; a ``scale`` schedule
(e.g. guide only late) trades bias for variance.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ttfkit.align import _posterior
from ttfkit.align._ode import expand_cond, integrate
from ttfkit.align.nfe import NFECounter
from ttfkit.align.result import AlignResult, count_distinct

__all__ = ["guided_sample", "PosteriorValueGrad"]

_T_EPS = 1e-4  # below this t the guidance term ((1-t)/t)·∇V_t (finite limit, ∇V_0 = 0) is dropped


def guided_sample(
    model,
    value_grad: Callable[[Tensor, Tensor, object], Tensor],
    *,
    n_samples: int,
    shape: tuple[int, ...],
    cond=None,
    steps: int = 20,
    solver: str = "midpoint",
    scale: float | Callable[[float], float] = 1.0,
    reward=None,
    reward_context=None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> AlignResult:
    """Integrate dx/dt = u + scale(t)·((1-t)/t)·∇V_t(x) from noise; returns (n_samples, *shape) samples.

    Args:
        model: flow model. value_grad: ∇V callable (its own NFE is added when it has ``.nfe``).
        steps, solver: ODE grid ("midpoint" never evaluates at t = 0).
        scale: constant or schedule t -> factor on the guidance term (0 = plain model samples).
        reward: optional, only to report rewards of the outputs.
    """
    counter = NFECounter(model)
    c = expand_cond(cond, n_samples)
    sched = scale if callable(scale) else (lambda t, k=float(scale): k)
    nfe0 = getattr(value_grad, "nfe", 0)

    def drift(t: Tensor, x: Tensor) -> Tensor:
        with torch.no_grad():
            u = counter.velocity(t, x, c)
        t0 = float(t[0])
        k = sched(t0)
        if k == 0.0 or t0 < _T_EPS:
            return u
        return u + (k * (1 - t0) / t0) * value_grad(t, x, c).detach()

    x0 = torch.randn((n_samples, *shape), generator=generator, dtype=dtype, device=device)
    x1 = integrate(drift, x0, steps, solver).detach()
    ctx = cond if reward_context is None else reward_context
    with torch.no_grad():
        r = reward(x1, ctx) if reward is not None else torch.zeros(n_samples, device=x1.device)
    nfe = counter.evals + getattr(value_grad, "nfe", 0) - nfe0
    return AlignResult(samples=x1, nfe=nfe, rewards=r, n_distinct=count_distinct(x1))


class PosteriorValueGrad:
    """∇_x V̂_t(x) from M reparameterised posterior samples per row (differentiable reward needed).

    Args:
        model: flow model (used when ``posterior="glass"``).
        reward: differentiable ``reward(x1, context) -> (B,)`` (``reward.differentiable`` must not be False).
        posterior: a DiamondMap (1 NFE per sample), "glass" (inner_steps NFE) or an object whose
            ``posterior_sample(t, x, cond, generator=, noise=)`` is differentiable in x.
        value_samples: M. generator: noise source for the posterior samples.
        reward_context: passed to the reward (defaults to the cond rows given by the caller).
    Attribute ``nfe``: rows evaluated so far (counted posterior calls).
    """

    def __init__(self, model, reward, *, posterior="glass", value_samples: int = 8, inner_steps: int = 4,
                 reward_context=None, generator: torch.Generator | None = None) -> None:
        if getattr(reward, "differentiable", True) is False:
            raise ValueError(f"guidance needs a differentiable reward, {type(reward).__name__} is not")
        if value_samples < 1:
            raise ValueError(f"value_samples must be >= 1, got {value_samples}")
        self.reward, self.m, self.generator, self.reward_context = reward, value_samples, generator, reward_context
        self.post, self._counters = _posterior.resolve(model, posterior, inner_steps)

    @property
    def nfe(self) -> int:
        return sum(c.evals for c in self._counters)

    def __call__(self, t: Tensor, x: Tensor, cond=None) -> Tensor:
        n, m = x.shape[0], self.m
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            xs = xg.repeat_interleave(m, dim=0)  # (N·M, ...)
            ts = t.repeat_interleave(m, dim=0)
            noise = torch.randn(xs.shape, generator=self.generator, dtype=x.dtype, device=x.device)
            cs = None if cond is None else _repeat_rows(cond, m)
            z = self.post.posterior_sample(ts, xs, cs, generator=self.generator, noise=noise)
            ctx = cs if self.reward_context is None else self.reward_context
            r = self.reward(z, ctx).reshape(n, m)
            v = torch.logsumexp(r, dim=1) - math.log(m)
            (grad,) = torch.autograd.grad(v.sum(), xg)
        return grad


def _repeat_rows(cond, m: int):
    if isinstance(cond, dict):
        return {k: v.repeat_interleave(m, dim=0) for k, v in cond.items()}
    return cond.repeat_interleave(m, dim=0)
