"""Optimizer registry: a name -> a config dataclass whose ``build(model)`` returns a torch optimizer.

Optimizers are built from the *model*, not a parameter list, because DoPr needs the modules (it
hooks their inputs). ``make_optimizer("dopr-adamw", model, lr=...)`` imports ``ttfkit.optim.dopr``
on demand (the module is the part of the name before the first "-"); plain AdamW and Muon live here.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pkgutil
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from torch.optim._muon import muon as _muon_functional

from ttfkit.optim.hybrid import HybridOptimizer

__all__ = [
    "OptimizerConfig",
    "register_optimizer",
    "make_optimizer",
    "get_optimizer_config",
    "list_optimizers",
    "split_param_groups",
]

_REGISTRY: dict[str, type["OptimizerConfig"]] = {}


@dataclass(frozen=True)
class OptimizerConfig:
    """Hyperparameters shared by every optimizer; subclasses add their own and implement ``build``.

    Args:
        lr: peak learning rate (schedulers scale it).
        weight_decay: decoupled weight decay, applied to matrices only (not biases, norms, embeddings).
        betas: Adam moment coefficients.
        eps: Adam denominator epsilon.
    """

    lr: float = 1e-4
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8

    def __post_init__(self):
        if not self.lr > 0:
            raise ValueError(f"learning rate must be > 0, got {self.lr=}")
        if self.weight_decay < 0:
            raise ValueError(f"weight decay must be >= 0, got {self.weight_decay=}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {self.betas=}")

    def build(self, model: nn.Module) -> torch.optim.Optimizer:
        raise NotImplementedError(f"{type(self).__name__} does not implement build()")


def register_optimizer(name: str) -> Callable[[type[OptimizerConfig]], type[OptimizerConfig]]:
    """Class decorator registering an ``OptimizerConfig`` subclass under ``name`` (once)."""

    def wrap(cls: type[OptimizerConfig]) -> type[OptimizerConfig]:
        if name in _REGISTRY:
            raise ValueError(f"optimizer {name!r} is already registered by {_REGISTRY[name].__module__}")
        _REGISTRY[name] = cls
        return cls

    return wrap


def get_optimizer_config(name: str, **overrides) -> OptimizerConfig:
    """The config registered as ``name`` with ``overrides`` applied (unknown fields are an error)."""
    if name not in _REGISTRY:
        module = name.split("-")[0]
        if importlib.util.find_spec(f"ttfkit.optim.{module}") is not None:
            importlib.import_module(f"ttfkit.optim.{module}")
    if name not in _REGISTRY:
        raise KeyError(f"unknown optimizer {name!r}; registered: {sorted(list_optimizers())}")
    cls = _REGISTRY[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"optimizer {name!r} has no option(s) {sorted(unknown)}; options: {sorted(fields)}")
    return cls(**overrides)


def make_optimizer(name: str, model: nn.Module, **overrides) -> torch.optim.Optimizer:
    """Build the optimizer registered as ``name`` for ``model``'s trainable parameters."""
    return get_optimizer_config(name, **overrides).build(model)


def list_optimizers() -> list[str]:
    """Every registered name, after importing every module of ``ttfkit.optim``."""
    import ttfkit.optim as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"ttfkit.optim.{info.name}")
    return sorted(_REGISTRY)


def split_param_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Split trainable parameters into (hidden matrices, the rest).

    Matrices are weights of Linear and Conv layers (2-D or more). Embeddings, norms' gains, biases
    and anything 1-D go to "the rest": Muon is meant for hidden matrices only, and weight decay is
    applied only to matrices.
    """
    matrices, rest, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            is_matrix = name == "weight" and p.ndim >= 2 and isinstance(module, (nn.Linear, nn.modules.conv._ConvNd))
            (matrices if is_matrix else rest).append(p)
    return matrices, rest


def _adamw_groups(cfg: OptimizerConfig, matrices, rest) -> list[dict]:
    groups = [{"params": matrices, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


@register_optimizer("adamw")
@dataclass(frozen=True)
class AdamWConfig(OptimizerConfig):
    """torch.optim.AdamW; weight decay on matrices only."""

    def build(self, model: nn.Module) -> torch.optim.Optimizer:
        matrices, rest = split_param_groups(model)
        return torch.optim.AdamW(_adamw_groups(self, matrices, rest), lr=self.lr, betas=self.betas, eps=self.eps)


@register_optimizer("muon")
@dataclass(frozen=True)
class MuonConfig(OptimizerConfig):
    """torch.optim.Muon on hidden matrices (conv weights flattened), AdamW on the rest.

    ``adjust_lr_fn="match_rms_adamw"`` scales Muon's orthogonalised update to AdamW's RMS, so one
    learning rate serves both halves and AdamW's learning-rate grid carries over.

    Args:
        momentum: Muon's Nesterov momentum.
    """

    momentum: float = 0.95

    def build(self, model: nn.Module) -> torch.optim.Optimizer:
        matrices, rest = split_param_groups(model)
        parts = []
        if matrices:
            parts.append(_FlatMuon(matrices, lr=self.lr, weight_decay=self.weight_decay, momentum=self.momentum))
        if rest:
            parts.append(torch.optim.AdamW(rest, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=0.0))
        return HybridOptimizer(parts)


class _FlatMuon(torch.optim.Muon):
    """torch.optim.Muon that also takes conv weights, orthogonalising them as ``weight.view(out, -1)``.

    Muon's constructor accepts 2-D parameters only; the update itself is torch's functional ``muon``
    applied to 2-D views (which share storage, so the in-place update lands in the real weight).
    """

    def __init__(self, params, lr: float, weight_decay: float, momentum: float):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=True,
                        ns_coefficients=(3.4445, -4.775, 2.0315), eps=1e-7, ns_steps=5,
                        adjust_lr_fn="match_rms_adamw")
        torch.optim.Optimizer.__init__(self, params, defaults)  # skips Muon's 2-D-only check

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, bufs = [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                params.append(p.view(p.shape[0], -1))
                grads.append(p.grad.view(p.shape[0], -1))
                bufs.append(state["momentum_buffer"].view(p.shape[0], -1))
            if params:
                _muon_functional(params, grads, bufs, lr=group["lr"], weight_decay=group["weight_decay"],
                                 momentum=group["momentum"], nesterov=group["nesterov"],
                                 ns_coefficients=group["ns_coefficients"], eps=group["eps"],
                                 ns_steps=group["ns_steps"], adjust_lr_fn=group["adjust_lr_fn"],
                                 has_complex=False)
        return loss
