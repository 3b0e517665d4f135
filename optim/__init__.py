"""ttfkit.optim: the optimizer registry (AdamW, Muon) and DoPr double preconditioning."""

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
    "HybridOptimizer",
    "OptimizerConfig",
    "get_optimizer_config",
    "list_optimizers",
    "make_optimizer",
    "register_optimizer",
    "split_param_groups",
]
