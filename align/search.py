"""Best-of-N: each output is the highest-reward of n_candidates ODE samples of the flow model.

Biased by construction (mode-seeking): it does not sample p_r ∝ p·exp(r); it is the baseline that
SMC is compared against at equal NFE. Convention: t = 0 noise, t = 1 data; ODE dx/dt = u(t, x).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ttfkit.align._ode import expand_cond, integrate
from ttfkit.align.nfe import NFECounter
from ttfkit.align.result import AlignResult, count_distinct

__all__ = ["best_of_n", "sample_ode"]


def best_of_n(
    model,
    reward,
    *,
    n_candidates: int,
    n_samples: int,
    shape: tuple[int, ...],
    cond=None,
    steps: int = 10,
    solver: str = "euler",
    reward_context=None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> AlignResult:
    """n_samples outputs (n_samples, *shape), each the argmax of ``reward`` over n_candidates ODE samples.

    Args:
        model: flow model, ``velocity(t (B,), x (B, *shape), cond)``.
        reward: ``reward(x1 (B, *shape), context) -> (B,)``.
        shape: event shape of one sample ((D,) or (H, Da)).
        cond: one context (leading dim 1) broadcast to all candidates, or None.
        steps, solver: ODE integration ("euler" costs ``steps`` NFE per candidate, "midpoint" twice that).
        reward_context: passed to the reward (defaults to ``cond``).
    NFE = n_samples·n_candidates·steps (euler). Ties keep the first candidate, so r = 0 returns plain
    model samples.
    """
    if n_candidates < 1 or n_samples < 1:
        raise ValueError(f"n_candidates and n_samples must be >= 1, got {n_candidates}, {n_samples}")
    counter = NFECounter(model)
    n = n_samples * n_candidates
    x1 = sample_ode(counter, n, shape, cond=cond, steps=steps, solver=solver, generator=generator,
                    dtype=dtype, device=device)
    with torch.no_grad():
        r = reward(x1, cond if reward_context is None else reward_context).reshape(n_samples, n_candidates)
    best = r.argmax(dim=1)  # (n_samples,)
    rows = torch.arange(n_samples, device=x1.device) * n_candidates + best
    samples = x1[rows]
    return AlignResult(samples=samples, nfe=counter.evals, rewards=r.gather(1, best[:, None])[:, 0],
                       n_distinct=count_distinct(samples))


def sample_ode(
    model,
    n: int,
    shape: tuple[int, ...],
    *,
    cond=None,
    steps: int = 10,
    solver: str = "euler",
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """n plain model samples (n, *shape): integrate the flow ODE from x_0 ~ N(0, I) at t = 0 to t = 1."""
    x0 = torch.randn((n, *shape), generator=generator, dtype=dtype, device=device) if noise is None else noise
    c = expand_cond(cond, n)
    with torch.no_grad():
        return integrate(lambda t, x: model.velocity(t, x, c), x0, steps, solver)
