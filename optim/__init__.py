"""ttfkit.optim: the optimizer registry (AdamW, Muon) and DoPr double preconditioning."""

from ttfkit.optim.dopr import ActivationPreconditioner, DoPr
from ttfkit.optim.hybrid import HybridOptimizer
from ttfkit.optim.registry import (
    OptimizerConfig,
    get_optimizer_config,
    list_optimizers,
    make_optimizer,
    register_optimizer,
    split_param_groups,
)

__all__ = [
    "ActivationPreconditioner",
    "DoPr",
    "HybridOptimizer",
    "OptimizerConfig",
    "get_optimizer_config",
    "list_optimizers",
    "make_optimizer",
    "register_optimizer",
    "split_param_groups",
]
