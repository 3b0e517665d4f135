"""Shared ODE integration of a velocity field from t = 0 (noise) to t = 1 (data). Private helpers."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

_SOLVERS = ("euler", "midpoint")


def integrate(velocity: Callable[[Tensor, Tensor], Tensor], x0: Tensor, steps: int, solver: str = "euler") -> Tensor:
    """Integrate dx/dt = velocity(t (N,), x) on a uniform grid of ``steps`` steps; pure.

    NFE per row: ``steps`` (euler, evaluated at t_i) or 2·``steps`` (midpoint: t_i and t_i + dt/2).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if solver not in _SOLVERS:
        raise ValueError(f"solver must be one of {_SOLVERS}, got {solver!r}")
    x = x0
    n = x0.shape[0]
    dt = 1.0 / steps
    for i in range(steps):
        t = torch.full((n,), i * dt, dtype=x0.dtype, device=x0.device)
        v = velocity(t, x)
        if solver == "midpoint":
            v = velocity(t + dt / 2, x + (dt / 2) * v)
        x = x + dt * v
    return x


def expand_cond(cond, n: int):
    """Broadcast one conditioning context (leading dim 1) to n rows; None stays None.

    Tensors with a leading dim of n pass unchanged; dicts are expanded key by key.
    """
    if cond is None:
        return None
    if isinstance(cond, dict):
        return {k: expand_cond(v, n) for k, v in cond.items()}
    if not isinstance(cond, Tensor):
        raise ValueError(f"cond must be a Tensor, a dict of Tensors or None, got {type(cond).__name__}")
    if cond.shape[0] == n:
        return cond
    if cond.shape[0] != 1:
        raise ValueError(f"cond must hold one context (leading dim 1) or {n} rows, got shape {tuple(cond.shape)}")
    return cond.expand(n, *cond.shape[1:])
