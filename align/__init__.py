"""ttfkit.align: inference-time reward alignment of flow models (GLASS, Diamond Maps, best-of-N, SMC, guidance).

Simulator look-ahead (``ttfkit.align.sim``), the learned chunk critic (``ttfkit.align.critic``) and policy
Diamond Maps (``ttfkit.align.policy_diamond``) are imported on demand.
Convention: x_t = (1-t)·x_0 + t·x_1, t = 0 noise, t = 1 data; a flow model is any object with
``velocity(t (N,), x (N, ...), cond)``; alignment targets p_r ∝ p·exp(r).
"""

from ttfkit.align.diamond import (
    DiamondConfig,
    DiamondMap,
    MLPPhi,
    diamond_posterior_sample,
    diamond_transition,
    distillation_loss,
)
from ttfkit.align.guidance import PosteriorValueGrad, guided_sample
from ttfkit.align.nfe import NFECounter
from ttfkit.align.one_step import OneStepPolicy, one_step_sample
from ttfkit.align.policy import AlignConfig, AlignedPolicy
from ttfkit.align.result import AlignResult
from ttfkit.align.rewards import list_rewards, make_reward, register_reward
from ttfkit.align.search import best_of_n, sample_ode
from ttfkit.align.smc import estimate_value, smc
from ttfkit.align.weighted import WeightedDiamondValueGrad, weighted_diamond_sample

__all__ = [
    "AlignConfig",
    "AlignResult",
    "AlignedPolicy",
    "DiamondConfig",
    "DiamondMap",
    "MLPPhi",
    "NFECounter",
    "OneStepPolicy",
    "PosteriorValueGrad",
    "WeightedDiamondValueGrad",
    "best_of_n",
    "diamond_posterior_sample",
    "diamond_transition",
    "distillation_loss",
    "estimate_value",
    "guided_sample",
    "list_rewards",
    "make_reward",
    "one_step_sample",
    "register_reward",
    "sample_ode",
    "smc",
    "weighted_diamond_sample",
]
