"""Exponential moving average of a model's weights, used for evaluation and saved beside them.

Decay schedule of Diffusion Policy's ``EMAModel`` (after @crowsonkb's warmup): at update n,
decay_n = clip(1 - (1 + n / inv_gamma) ** -power, min_decay, max_decay), so early averages forget
fast and late ones slowly. Parameters are averaged; buffers (e.g. normaliser stats) are copied.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["EMA"]


@dataclass(frozen=True)
class EMAConfig:
    """EMA decay schedule.

    Args:
        power: warmup exponent (3/4 suits ~1e5 steps or fewer; 2/3 longer runs).
        inv_gamma: warmup time scale in updates.
        min_decay: decay floor.
        max_decay: decay ceiling.
    """

    power: float = 0.75
    inv_gamma: float = 1.0
    min_decay: float = 0.0
    max_decay: float = 0.9999

    def __post_init__(self):
        if not 0.0 <= self.min_decay <= self.max_decay < 1.0:
            raise ValueError(f"EMA: need 0 <= min_decay <= max_decay < 1, got {self.min_decay=}, {self.max_decay=}")
        if self.power <= 0 or self.inv_gamma <= 0:
            raise ValueError(f"EMA: power and inv_gamma must be > 0, got {self.power=}, {self.inv_gamma=}")


class EMA:
    """Holds ``shadow``, a frozen copy of ``model`` whose weights track the EMA.

    ``update(model)`` mutates the shadow in place; ``state_dict``/``load_state_dict`` give
    {"shadow": weights, "n_updates": int} for checkpoints.
    """

    def __init__(self, model: nn.Module, config: EMAConfig = EMAConfig()):
        self.config = config
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)
        self.n_updates = 0

    def decay(self) -> float:
        """The decay the next update will use."""
        c = self.config
        value = 1.0 - (1.0 + self.n_updates / c.inv_gamma) ** -c.power
        return min(max(value, c.min_decay), c.max_decay)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.decay()
        for ema_p, p in zip(self.shadow.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - decay)  # ema = decay·ema + (1 - decay)·p
        for ema_b, b in zip(self.shadow.buffers(), model.buffers()):
            ema_b.copy_(b)
        self.n_updates += 1

    def state_dict(self) -> dict:
        return {"shadow": self.shadow.state_dict(), "n_updates": self.n_updates}

    def load_state_dict(self, state: dict) -> None:
        self.shadow.load_state_dict(state["shadow"])
        self.n_updates = int(state["n_updates"])
