"""Rewards for inference-time alignment: a registry and the analytic built-ins.

Protocol: a reward is a callable ``reward(x1, cond) -> Tensor (N,)`` (the log-potential of the target
p_r ∝ p·exp(r); a temperature is the caller's scaling) with a boolean attribute ``differentiable``
(True when gradients through x1 are meaningful, as guidance needs). ``x1`` is (N, ...) (vectors (N, D)
for the test fixture, action chunks (N, H, Da) for policies, index 0 = the oldest observation step as in
Diffusion Policy). ``cond`` is whatever context the caller passes: None for the fixture; for robot
rewards a dict of tensors (e.g. ``{"agent_pos": (Dp,) or (N, Dp)}`` in env units).

Rewards are registered by name with :func:`register_reward` and built with :func:`make_reward`.
Simulator look-ahead and learned-critic rewards live in their own modules and register themselves
when imported (``make_reward`` imports ``ttfkit.align.<name>`` on demand).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["register_reward", "make_reward", "list_rewards", "QuadraticReward", "ZeroReward",
           "GoalDistanceReward", "SmoothnessReward", "KeepOutBoxReward"]

_REGISTRY: dict[str, Callable[..., object]] = {}


def register_reward(name: str) -> Callable:
    """Class/function decorator: ``make_reward(name, **kw)`` then calls it with ``**kw``."""

    def deco(factory):
        if name in _REGISTRY:
            raise ValueError(f"reward {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def make_reward(name: str, **kwargs):
    """Build a registered reward; unknown names try ``import ttfkit.align.<name>`` first."""
    if name not in _REGISTRY:
        try:
            importlib.import_module(f"ttfkit.align.{name}")
        except ModuleNotFoundError:
            pass
    if name not in _REGISTRY:
        raise KeyError(f"unknown reward {name!r}; registered: {sorted(_REGISTRY)}")
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"reward {name!r} rejected options {sorted(kwargs)}: {err}") from err


def list_rewards() -> list[str]:
    """Registered reward names."""
    return sorted(_REGISTRY)


@register_reward("quadratic")
class QuadraticReward:
    """r(x) = -|x - center|² / (2 tau²) over the flattened sample (keeps Gaussian mixtures Gaussian)."""

    differentiable = True

    def __init__(self, center: Tensor | Sequence[float], tau: float) -> None:
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        self.center = torch.as_tensor(center, dtype=torch.float32)
        self.tau = float(tau)

    def __call__(self, x: Tensor, cond=None) -> Tensor:
        xf = x.reshape(x.shape[0], -1)
        c = self.center.to(xf).reshape(1, -1)
        if c.shape[1] != xf.shape[1]:
            raise ValueError(f"center has {c.shape[1]} dims, x flattens to {tuple(xf.shape)}")
        return -((xf - c) ** 2).sum(1) / (2 * self.tau**2)


@register_reward("zero")
class ZeroReward:
    """r = 0: every alignment method must then return the model's own distribution."""

    differentiable = True

    def __call__(self, x: Tensor, cond=None) -> Tensor:
        return x.reshape(x.shape[0], -1).sum(1) * 0.0


@register_reward("goal_distance")
class GoalDistanceReward:
    """r = -scale·|p_end - goal|: distance of the chunk's end-effector target to a goal.

    Args:
        goal: goal position (len(pos_dims),); or None to read ``cond[goal_key]``.
        pos_dims: action dims holding the position command.
        mode: "delta" (Meta-World: p_end = start + action_scale·Σ_h a_h) or "absolute" (p_end = a_last).
        action_scale: delta scale (Meta-World uses 1/100).
        steps: how many leading actions of the chunk are executed (None: all H).
        start_key, start_dims: where the current end-effector position sits in ``cond`` ("delta" mode).
        goal_key: key of the goal in ``cond`` when ``goal`` is None.
        scale: multiplies the distance.
    """

    differentiable = True

    def __init__(self, goal=None, pos_dims: Sequence[int] = (0, 1, 2), mode: str = "delta",
                 action_scale: float = 0.01, steps: int | None = None, start_key: str = "agent_pos",
                 start_dims: Sequence[int] = (0, 1, 2), goal_key: str = "goal", scale: float = 1.0) -> None:
        if mode not in ("delta", "absolute"):
            raise ValueError(f"mode must be 'delta' or 'absolute', got {mode!r}")
        if steps is not None and steps < 1:
            raise ValueError(f"steps must be >= 1 or None, got {steps}")
        self.goal = None if goal is None else torch.as_tensor(goal, dtype=torch.float32)
        self.pos_dims, self.start_dims = list(pos_dims), list(start_dims)
        self.mode, self.action_scale, self.steps = mode, action_scale, steps
        self.start_key, self.goal_key, self.scale = start_key, goal_key, scale

    def __call__(self, x: Tensor, cond=None) -> Tensor:
        end = _end_effector_path(x, cond, self)[:, -1]  # (N, P)
        goal = self.goal if self.goal is not None else _from_cond(cond, self.goal_key, x)
        return -self.scale * (end - goal.to(end)).norm(dim=-1)


@register_reward("smoothness")
class SmoothnessReward:
    """r = -scale·Σ_h |Δ^order a_h|²: penalises finite differences along the chunk (order 3: jerk)."""

    differentiable = True

    def __init__(self, order: int = 3, scale: float = 1.0, dims: Sequence[int] | None = None) -> None:
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.order, self.scale, self.dims = order, scale, None if dims is None else list(dims)

    def __call__(self, x: Tensor, cond=None) -> Tensor:
        if x.ndim != 3:
            raise ValueError(f"smoothness needs chunks (N, H, Da), got {tuple(x.shape)}")
        a = x if self.dims is None else x[..., self.dims]
        if a.shape[1] <= self.order:
            raise ValueError(f"horizon {a.shape[1]} too short for difference order {self.order}")
        d = torch.diff(a, n=self.order, dim=1)  # (N, H-order, Da)
        return -self.scale * (d**2).sum(dim=(1, 2))


@register_reward("keep_out")
class KeepOutBoxReward:
    """r = -scale·Σ_h depth_h: penalises end-effector targets inside an axis-aligned box.

    depth_h = max(0, min_d min(p_hd - low_d, high_d - p_hd)) (0 outside the box), with the path p_h built
    as in :class:`GoalDistanceReward`. ``hard=True`` counts violating steps instead (not differentiable).
    """

    def __init__(self, low, high, pos_dims: Sequence[int] = (0, 1, 2), mode: str = "delta",
                 action_scale: float = 0.01, steps: int | None = None, start_key: str = "agent_pos",
                 start_dims: Sequence[int] = (0, 1, 2), scale: float = 1.0, hard: bool = False) -> None:
        self.low, self.high = torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32)
        if self.low.shape != self.high.shape or (self.low >= self.high).any():
            raise ValueError(f"keep-out box needs low < high of equal shape, got {low} and {high}")
        if mode not in ("delta", "absolute"):
            raise ValueError(f"mode must be 'delta' or 'absolute', got {mode!r}")
        self.pos_dims, self.start_dims = list(pos_dims), list(start_dims)
        self.mode, self.action_scale, self.steps = mode, action_scale, steps
        self.start_key, self.scale, self.hard = start_key, scale, hard
        self.differentiable = not hard

    def __call__(self, x: Tensor, cond=None) -> Tensor:
        path = _end_effector_path(x, cond, self)  # (N, H', P)
        inside = torch.minimum(path - self.low.to(path), self.high.to(path) - path).amin(-1)  # (N, H')
        if self.hard:
            return -self.scale * (inside > 0).to(path.dtype).sum(1)
        return -self.scale * inside.clamp_min(0).sum(1)


def _end_effector_path(x: Tensor, cond, cfg) -> Tensor:
    """(N, H', P) end-effector targets after each executed action of the chunk."""
    if x.ndim != 3:
        raise ValueError(f"end-effector rewards need chunks (N, H, Da), got {tuple(x.shape)}")
    a = x[:, : cfg.steps, cfg.pos_dims] if cfg.steps else x[:, :, cfg.pos_dims]  # (N, H', P)
    if cfg.mode == "absolute":
        return a
    start = _from_cond(cond, cfg.start_key, x)[..., cfg.start_dims].to(a)  # (P,) or (N, P)
    return start.reshape(-1, 1, a.shape[-1]) + cfg.action_scale * a.cumsum(1)


def _from_cond(cond, key: str, x: Tensor) -> Tensor:
    if not isinstance(cond, dict) or key not in cond:
        have = sorted(cond) if isinstance(cond, dict) else type(cond).__name__
        raise KeyError(f"reward needs cond[{key!r}] (context dict); got {have}")
    return torch.as_tensor(cond[key], device=x.device)
