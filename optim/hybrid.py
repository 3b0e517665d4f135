"""HybridOptimizer: several torch optimizers stepping disjoint parameter sets as one optimizer.

Muon handles hidden matrices only, so a Muon training run is Muon plus AdamW. This wrapper exposes
their parameter groups as its own (the same dict objects), so LR schedulers, gradient clipping and
``zero_grad`` see one optimizer, and ``state_dict`` round-trips both parts.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

__all__ = ["HybridOptimizer"]


class HybridOptimizer(torch.optim.Optimizer):
    """Steps each part in order; ``param_groups`` is the concatenation of the parts' groups."""

    def __init__(self, parts: list[torch.optim.Optimizer]):
        if not parts:
            raise ValueError("HybridOptimizer needs at least one optimizer")
        self.parts = list(parts)
        # Deliberately skip Optimizer.__init__: the parts own the groups and the state. Hook tables are
        # OrderedDicts as in torch (RemovableHandle keeps a weak reference to them).
        self.defaults = {}
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()
        self._optimizer_state_dict_pre_hooks = OrderedDict()
        self._optimizer_state_dict_post_hooks = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        self._optimizer_load_state_dict_post_hooks = OrderedDict()
        self._patch_step_function()

    @property
    def param_groups(self) -> list[dict]:
        return [g for part in self.parts for g in part.param_groups]

    @property
    def state(self) -> dict:
        merged = {}
        for part in self.parts:
            merged.update(part.state)
        return merged

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for part in self.parts:
            part.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state_dict: dict) -> None:
        parts = state_dict.get("parts")
        if parts is None or len(parts) != len(self.parts):
            raise ValueError(
                f"state dict has {0 if parts is None else len(parts)} parts, this optimizer has {len(self.parts)}"
            )
        for part, sd in zip(self.parts, parts):
            part.load_state_dict(sd)

    def __repr__(self) -> str:
        return f"HybridOptimizer({', '.join(type(p).__name__ for p in self.parts)})"
