"""One-step policy: at outer time t = 0 a Diamond Map's posterior p(x_1 | x_0) is the model's own distribution
p(x_1), so one map call turns noise into an action chunk (Diamond Maps, arXiv 2602.05993).

Convention: as in :mod:`ttfkit.align.diamond`. At t = 0 the GLASS sufficient input ignores x_t (lam(0) = 0), so
the map sees x_t only through its zero-initialised layer; distillation draws x_t = e at t = 0, pure noise
independent of the data, so :func:`one_step_sample` passes an independent N(0, I) draw there too.
Chunks: (B, H, Da) in the policy's normalised action space.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from ttfkit.align import glass
from ttfkit.align.diamond import _sinusoidal, diamond_posterior_sample
from ttfkit.align.policy_diamond import PolicyPhi
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
        if not isinstance(self.dmap.net, PolicyPhi) or torch.is_grad_enabled():
            return one_step_sample(self.dmap, cond, noise=noise, generator=generator)
        x0 = torch.randn(noise.shape, generator=generator, dtype=noise.dtype, device=noise.device)
        return self._one_call(cond, noise, x0)

    def _one_call(self, cond: Tensor, e: Tensor, x0: Tensor) -> Tensor:
        """:func:`one_step_sample` for a PolicyPhi map with its constants folded (inference only; equal to it up to
        float rounding). At t = 0 every time input is fixed (t, s_min, s_max, and t* since x_t carries no weight),
        and the map's output is affine in x̄ = e and in the backbone's output, so a call is one small linear layer
        plus the backbone: what a deployed one-step policy pays per chunk."""
        cfg, net = self.dmap.config, self.dmap.net
        s0, s1 = cfg.s_min, cfg.s_max
        root = math.sqrt(max((s0 / (1 - s0)) ** 2, glass._LAM_MIN))
        t_star = root / (1 + root)
        y = e * ((s0 / (1 - s0) ** 2) / (root * (1 + root)))  # GLASS sufficient input t*·S at t = 0
        bias, weight = self._folded_extra()
        n = e.shape[0]
        chunks = torch.cat([x0.reshape(n, -1), e.reshape(n, -1)], 1) if net.xbar_input else x0.reshape(n, -1)
        residual = net.backbone(y, torch.full((n,), t_star, dtype=e.dtype, device=e.device),
                                cond + F.linear(chunks, weight, bias))
        z_hat = y + (1 - t_star) * residual
        k = (s1 - s0) / (1 - s0)  # X(s_min, s_max; e) = e + k·(ẑ - e)
        return ((1 - k) * e + k * z_hat) / s1

    def _folded_extra(self) -> tuple[Tensor, Tensor]:
        """(bias with the fixed time features' share folded in, the weight on the chunk inputs) of PolicyPhi's
        zero-initialised layer; recomputed whenever its weights change."""
        extra = self.dmap.net.extra
        key = (extra.weight.data_ptr(), extra.weight._version, extra.bias._version)
        if getattr(self, "_folded_key", None) != key:
            cfg, dim = self.dmap.config, self.dmap.net.time_dim
            times = [torch.full((1,), u, dtype=extra.weight.dtype, device=extra.weight.device)
                     for u in (0.0, cfg.s_min, cfg.s_max)]
            feats = torch.cat([_sinusoidal(u, dim) for u in times], 1)  # (1, 3·dim)
            n_time = feats.shape[1]
            with torch.no_grad():
                bias = extra.bias + feats[0] @ extra.weight[:, :n_time].T
                self._folded = (bias, extra.weight[:, n_time:].contiguous())
            self._folded_key = key
        return self._folded

    def _sampler_draws_noise(self) -> bool:
        """The map's x_0 input is drawn from the generator too, so ``plan_chunks`` samples row by row on each
        slot's generator: an episode's chunks depend on its seed alone, not on torch's global RNG."""
        return True
