"""Coherence reward: prefer the candidate chunk that continues the chunk the policy is executing.

A chunked policy plans a new chunk every ``n_action_steps`` steps. The previous chunk already holds a plan
for the first steps of the new one (its unexecuted tail); a candidate that switches to another mode there
makes the robot hesitate between strategies, which compounds in closed loop. Backward coherence (BID,
Liu et al. 2024, arXiv 2408.17355) ranks candidates by their distance to that tail. It needs no simulator,
no training and no reward model, so it deploys wherever the policy does.

r(x) = -scale · mean_h |x[To-1+h] - prev[To-1+shift+h]|², over the L = H - (To-1+shift) overlapping steps,
in env action units. ``AlignedPolicy`` puts the slot's previous chosen chunk (env units) in the context as
``prev_chunk`` with ``chunk_shift`` (= n_action_steps) and ``obs_steps`` (= To); at an episode's first chunk
there is none and every candidate scores 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ttfkit.align.rewards import register_reward

__all__ = ["CoherenceReward"]


@register_reward("coherence")
class CoherenceReward:
    """Backward coherence with the previous chunk's unexecuted tail (see module docstring)."""

    differentiable = True

    def __init__(self, scale: float = 1.0) -> None:
        if not scale > 0:
            raise ValueError(f"coherence scale must be > 0, got {scale!r}")
        self.scale = float(scale)

    def __call__(self, x: Tensor, cond=None) -> Tensor:
        if x.ndim != 3:
            raise ValueError(f"coherence needs chunks (N, H, Da), got {tuple(x.shape)}")
        if not isinstance(cond, dict):
            raise KeyError("the coherence reward needs AlignedPolicy's context dict (prev_chunk, chunk_shift, "
                           f"obs_steps); got {type(cond).__name__}")
        prev = cond.get("prev_chunk")
        if prev is None:
            return x.new_zeros(x.shape[0])
        prev = torch.as_tensor(prev).to(x)
        if prev.shape != x.shape[1:]:
            raise ValueError(f"prev_chunk has shape {tuple(prev.shape)}, candidates {tuple(x.shape[1:])}")
        start, shift = int(cond["obs_steps"]) - 1, int(cond["chunk_shift"])
        overlap = x.shape[1] - start - shift
        if overlap < 1:
            return x.new_zeros(x.shape[0])
        tail = prev[start + shift:]  # (L, Da): what the previous chunk planned for these steps
        return -self.scale * ((x[:, start:start + overlap] - tail) ** 2).sum(-1).mean(-1)
