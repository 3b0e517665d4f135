"""One-step policy: at outer time t = 0 a Diamond Map's posterior p(x_1 | x_0) is the model's own distribution
p(x_1), so one map call turns noise into an action chunk (Diamond Maps, arXiv 2602.05993).

Convention: as in :mod:`ttfkit.align.diamond`. At t = 0 the GLASS sufficient input ignores x_t (lam(0) = 0), so
the map sees x_t only through its zero-initialised layer; distillation draws x_t = e at t = 0, pure noise
independent of the data, so :func:`one_step_sample` passes an independent N(0, I) draw there too.
Chunks: (B, H, Da) in the policy's normalised action space.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ttfkit.align.diamond import diamond_posterior_sample
from ttfkit.policies.flow import FlowPolicy

__all__ = ["one_step_sample", "OneStepPolicy"]


def one_step_sample(dmap, cond, *, noise: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """x_1 ~ p(x_1 | cond) in one Diamond-Map call from ``noise`` (N, ...), the map's x̄_{s_min}; pure given
    ``generator`` (which draws the uninformative x_0 input). Returns the shape of ``noise``."""
    x0 = torch.randn(noise.shape, generator=generator, dtype=noise.dtype, device=noise.device)
    return diamond_posterior_sample(dmap, 0.0, x0, cond, noise=noise)


class OneStepPolicy(FlowPolicy):
    """The teacher flow policy with its chunk sampler replaced by one Diamond-Map call (:func:`one_step_sample`).

    Observation handling, normalisation, queues and ``select_action`` are the teacher's (same config and
    weights); ``velocity`` stays the teacher's, so alignment methods still see the flow model.

    Args:
        teacher: the :class:`FlowPolicy` the map was distilled from. dmap: its :class:`DiamondMap`.
    """

    def __init__(self, teacher: FlowPolicy, dmap) -> None:
        if not isinstance(teacher, FlowPolicy):
            raise ValueError(f"OneStepPolicy needs a FlowPolicy teacher, got {type(teacher).__name__}")
        super().__init__(teacher.config, normalizer=teacher.normalizer)
        self.load_state_dict(teacher.state_dict())
        self.dmap = dmap.to(teacher.device).eval()
        self.to(teacher.device).eval()

    def _sample(self, cond: Tensor, noise: Tensor, generator: torch.Generator | None) -> Tensor:
        return one_step_sample(self.dmap, cond, noise=noise, generator=generator)

    def _sampler_draws_noise(self) -> bool:
        """The map's x_0 input is drawn from the generator too, so ``plan_chunks`` samples row by row on each
        slot's generator: an episode's chunks depend on its seed alone, not on torch's global RNG."""
        return True
