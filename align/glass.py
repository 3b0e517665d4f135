"""GLASS Flows: training-free stochastic transitions and posterior samples from any flow model.

Holderrieth et al., "GLASS Flows" (arXiv 2509.25170); methods note, "GLASS Flows".
Convention: x_t = (1-t)·x_0 + t·x_1, t = 0 noise, t = 1 data; a flow model is any object with
``velocity(t (N,), x (N, ...), cond) -> (N, ...)`` and denoiser D(t, x) = x + (1-t)·velocity.

For fixed x_t the inner (posterior) path is x̄_s = s·x_1 + (1-s)·e with x_1 ~ p(x_1 | x_t). The two
noisy views x_t/t and x̄_s/s of x_1 combine into the sufficient statistic S with precision
lam* = lam(t) + lam(s), lam(u) = (u/(1-u))² = 1/g(u); then t* = g⁻¹(1/lam*), ẑ = D(t*, t*·S) (one network
call) and the inner velocity is v̄(s, x̄_s) = (ẑ - x̄_s)/(1-s). All formulas are written with
precisions, so t = 0 (no information: plain flow sampling) needs no special case.

Early stop: running the inner flow only to lam(s*) = lam(t') - lam(t) and returning t'·S gives an exact
sample of the Markov transition p(x_t' | x_t) (the noisier view is the less noisy one plus independent
noise), which preserves the marginals p_t -> p_t'. Exact as ``inner_steps`` -> infinity; each inner
step costs one network call on the N rows.

Functions are pure (inputs are not modified); ``t``/``s`` are floats or (N,) tensors; ``cond`` is
passed to the model unchanged and must already have N rows (or be None).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "posterior_velocity",
    "posterior_denoiser",
    "posterior_sample",
    "transition",
    "early_stop_time",
    "sufficient_input",
    "combine_views",
]

_LAM_MIN = 1e-12  # floor on the combined precision: with t = s = 0 the denoiser at t* = 0 is E[x_1] anyway


def posterior_velocity(model, t: Tensor | float, x_t: Tensor, s: Tensor | float, xbar: Tensor, cond=None) -> Tensor:
    """Inner GLASS velocity v̄(s, x̄_s | x_t) = (ẑ - x̄_s)/(1-s), one network call; s < 1. Shape of x_t."""
    z_hat = posterior_denoiser(model, t, x_t, s, xbar, cond)
    s_b = _bcast(s, xbar)
    return (z_hat - xbar) / (1 - s_b)


def posterior_denoiser(model, t: Tensor | float, x_t: Tensor, s: Tensor | float, xbar: Tensor, cond=None) -> Tensor:
    """ẑ = D(t*, t*·S(x_t, x̄_s)) = E[x_1 | x_t, x̄_s], one network call. Shape of x_t."""
    t_star, y = sufficient_input(t, x_t, s, xbar)
    d_t = t_star.reshape(-1, *([1] * (x_t.ndim - 1)))
    return y + (1 - d_t) * model.velocity(t_star, y, cond)


def sufficient_input(t: Tensor | float, x_t: Tensor, s: Tensor | float, xbar: Tensor) -> tuple[Tensor, Tensor]:
    """(t* (N,), y = t*·S (N, ...)): the reparametrised time and the denoiser input of the two views."""
    t_b, s_b = _bcast(t, x_t), _bcast(s, x_t)
    lam = (_lam(t_b) + _lam(s_b)).clamp_min(_LAM_MIN)  # (N, 1, ...)
    num = x_t * t_b / (1 - t_b) ** 2 + xbar * s_b / (1 - s_b) ** 2  # S·lam*
    root = lam.sqrt()
    y = num / (root * (1 + root))  # t*·S with t* = root/(1+root)
    t_star = (root / (1 + root)).reshape(x_t.shape[0], -1)[:, 0]  # (N,)
    return t_star, y


def posterior_sample(
    model,
    t: Tensor | float,
    x_t: Tensor,
    cond=None,
    *,
    inner_steps: int = 8,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
) -> Tensor:
    """x_1 ~ p(x_1 | x_t) by Euler-integrating the inner flow from s = 0 (x̄ = noise) to s = 1.

    NFE: ``inner_steps`` calls on N rows. Each Euler step is written as
    x̄ <- x̄ + (s'-s)/(1-s)·(ẑ - x̄), so the last step lands on ẑ without dividing by zero.
    ``noise`` (shape of x_t) replaces the N(0, I) draw; then the map is differentiable in x_t
    (reparameterised posterior samples).
    """
    xbar = _noise(x_t, generator, noise)
    return _integrate(model, t, x_t, xbar, torch.ones_like(_svec(t, x_t)), cond, inner_steps)


def transition(
    model,
    t: Tensor | float,
    t_next: Tensor | float,
    x_t: Tensor,
    cond=None,
    *,
    inner_steps: int = 8,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
) -> Tensor:
    """x_t' ~ p(x_t' | x_t) for 0 <= t < t' <= 1 by the early-stopped inner flow; NFE ``inner_steps``.

    t' = 1 is a posterior sample. From t = 0 the result ignores x_t (plain flow sampling to t').
    """
    t_vec, tn_vec = _svec(t, x_t), _svec(t_next, x_t)
    if (tn_vec <= t_vec).any() or (tn_vec > 1).any() or (t_vec < 0).any():
        raise ValueError(f"transition needs 0 <= t < t_next <= 1, got t={t}, t_next={t_next}")
    xbar = _noise(x_t, generator, noise)
    s_stop = early_stop_time(t_vec, tn_vec)  # (N,)
    xbar = _integrate(model, t_vec, x_t, xbar, s_stop, cond, inner_steps)
    return combine_views(t_vec, x_t, s_stop, xbar, tn_vec)


def early_stop_time(t: Tensor, t_next: Tensor) -> Tensor:
    """s* with lam(s*) = lam(t') - lam(t), i.e. g(s*) = g(t)g(t')/(g(t) - g(t')); 1 where t' = 1."""
    ratio = (t * (1 - t_next)) ** 2 / ((1 - t) * t_next) ** 2  # lam(t)/lam(t') in [0, 1)
    root = t_next / (1 - t_next) * (1 - ratio).sqrt()  # sqrt(lam(t') - lam(t))
    return torch.where(t_next >= 1, torch.ones_like(t), root / (1 + root))


def combine_views(t: Tensor, x_t: Tensor, s: Tensor, xbar: Tensor, t_next: Tensor) -> Tensor:
    """x_t' = t'·S(x_t, x̄_s) when lam(t) + lam(s) = lam(t'); x̄_s itself where t' = 1 (then s = 1)."""
    t_b, s_b, tn_b = _bcast(t, x_t), _bcast(s, x_t), _bcast(t_next, x_t)
    done = tn_b >= 1
    ratio = torch.where(done, torch.zeros_like(tn_b), (1 - tn_b) ** 2 / tn_b.clamp_min(1e-12) ** 2)  # 1/lam(t')
    s_safe = torch.where(done, torch.zeros_like(s_b), s_b)
    num = x_t * t_b / (1 - t_b) ** 2 + xbar * s_safe / (1 - s_safe) ** 2
    return torch.where(done, xbar, tn_b * num * ratio)


def _integrate(model, t, x_t: Tensor, xbar: Tensor, s_end: Tensor, cond, inner_steps: int) -> Tensor:
    if inner_steps < 1:
        raise ValueError(f"inner_steps must be >= 1, got {inner_steps}")
    t_vec = _svec(t, x_t)
    for i in range(inner_steps):
        s = s_end * (i / inner_steps)  # (N,)
        s_next = s_end * ((i + 1) / inner_steps)
        z_hat = posterior_denoiser(model, t_vec, x_t, s, xbar, cond)
        frac = _bcast((s_next - s) / (1 - s), xbar)
        xbar = xbar + frac * (z_hat - xbar)
    return xbar


def _lam(u: Tensor) -> Tensor:
    return (u / (1 - u)) ** 2


def _svec(t: Tensor | float, x: Tensor) -> Tensor:
    tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if tt.ndim == 0:
        tt = tt.expand(x.shape[0])
    if tt.shape != (x.shape[0],):
        raise ValueError(f"time must be a scalar or ({x.shape[0]},), got shape {tuple(tt.shape)}")
    return tt


def _bcast(t: Tensor | float, x: Tensor) -> Tensor:
    return _svec(t, x).reshape(x.shape[0], *([1] * (x.ndim - 1)))


def _noise(x: Tensor, generator: torch.Generator | None, noise: Tensor | None) -> Tensor:
    if noise is None:
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    if noise.shape != x.shape:
        raise ValueError(f"noise shape {tuple(noise.shape)} must equal x_t shape {tuple(x.shape)}")
    return noise
