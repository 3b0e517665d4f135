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

from ttfkit.align import glass
from ttfkit.align.diamond import _sinusoidal, diamond_posterior_sample
from ttfkit.align.policy_diamond import PolicyPhi
from ttfkit.policies.backbones import sinusoidal_embedding
from ttfkit.policies.backbones.mlp import MLPBackbone
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
        net = self.dmap.net
        if not (isinstance(net, PolicyPhi) and isinstance(net.backbone, MLPBackbone)) or torch.is_grad_enabled():
            return one_step_sample(self.dmap, cond, noise=noise, generator=generator)
        x0 = torch.randn(noise.shape, generator=generator, dtype=noise.dtype, device=noise.device)
        return self._one_call(cond, noise, x0)

    def _one_call(self, cond: Tensor, e: Tensor, x0: Tensor) -> Tensor:
        """:func:`one_step_sample` of a PolicyPhi map on the MLP backbone, with its constants folded (inference
        only; equal to it up to float rounding): what a deployed one-step policy pays per chunk. At t = 0 every
        time input is fixed (t, s_min, s_max, and t* since x_t carries no weight), so the time embeddings are
        constants; the layers before the residual blocks are affine in (cond, x_0, e) and the output is affine in
        e and the backbone's last layer. The call is one input layer, the residual blocks and one output layer."""
        weight_in, bias_in, weight_out, bias_out, e_scale = self._folded()
        n = e.shape[0]
        h = torch.addmm(bias_in, torch.cat([cond, x0.reshape(n, -1), e.reshape(n, -1)], 1), weight_in)
        h = self.dmap.net.backbone.trunk(h)
        return torch.addmm(bias_out, h, weight_out).view_as(e).add_(e, alpha=e_scale)

    def _folded(self) -> tuple[Tensor, Tensor, Tensor, Tensor, float]:
        """(input weight (Dc + 2·H·Da, d), input bias, output weight (d, H·Da), output bias, e's output scale) of
        the folded call; recomputed whenever a weight it is built from changes (in place or by ``.to()``)."""
        net = self.dmap.net
        mlp, extra = net.backbone, net.extra
        sources = (extra.weight, extra.bias, mlp.in_proj.weight, mlp.in_proj.bias, mlp.out_proj.weight,
                   mlp.out_proj.bias, *mlp.time_mlp.parameters())
        key = tuple((p.data_ptr(), p._version) for p in sources)
        if getattr(self, "_folded_key", None) == key:
            return self._folded_weights
        cfg = self.dmap.config
        s0, s1 = cfg.s_min, cfg.s_max
        root = math.sqrt(max((s0 / (1 - s0)) ** 2, glass._LAM_MIN))
        t_star = root / (1 + root)
        y_scale = (s0 / (1 - s0) ** 2) / (root * (1 + root))  # GLASS sufficient input y = t*·S = y_scale·e at t = 0
        k = (s1 - s0) / (1 - s0)  # x_1 = ((1 - k)·e + k·ẑ)/s1 with ẑ = y + (1 - t*)·backbone output
        like = dict(dtype=extra.weight.dtype, device=extra.weight.device)
        with torch.no_grad():
            # PolicyPhi: cond' = cond + extra([emb(0), emb(s_min), emb(s_max), x_0, (e)])
            times = torch.cat([_sinusoidal(torch.full((1,), u, **like), net.time_dim) for u in (0.0, s0, s1)], 1)
            n_time, hd = times.shape[1], net.horizon * net.action_dim
            extra_bias = extra.bias + times[0] @ extra.weight[:, :n_time].T
            extra_x0 = extra.weight[:, n_time:n_time + hd]
            # MLP backbone: h = in_proj([y, time_mlp(emb(t*)), cond'])
            w_y, w_t, w_c = mlp.in_proj.weight.split([hd, mlp.config.time_dim, net.cond_dim], 1)
            temb = mlp.time_mlp(sinusoidal_embedding(torch.full((1,), t_star, **like), mlp.config.time_dim))[0]
            w_e = y_scale * w_y + (w_c @ extra.weight[:, n_time + hd:] if net.xbar_input else 0)
            weight_in = torch.cat([w_c, w_c @ extra_x0, w_e], 1).T.contiguous()
            bias_in = mlp.in_proj.bias + w_t @ temb + w_c @ extra_bias
            out_scale = k * (1 - t_star) / s1
            self._folded_weights = (weight_in, bias_in, (out_scale * mlp.out_proj.weight).T.contiguous(),
                                    out_scale * mlp.out_proj.bias, ((1 - k) + k * y_scale) / s1)
        self._folded_key = key
        return self._folded_weights

    def _sampler_draws_noise(self) -> bool:
        """The map's x_0 input is drawn from the generator too, so ``plan_chunks`` samples row by row on each
        slot's generator: an episode's chunks depend on its seed alone, not on torch's global RNG."""
        return True
