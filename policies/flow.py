"""Flow-matching policy on action chunks (Lipman et al. 2023, "Flow Matching for Generative Modeling";
Liu et al. 2023, rectified flow; as in pi0's action expert).

Convention (shared by ttfkit.align): linear path x_t = (1 - t)·noise + t·data, t ~ U[0, 1], t=0 is
noise and t=1 is data; the network predicts the velocity u(t, x_t, cond) with regression target
data - noise. Sampling integrates dx/dt = u from t=0 to t=1 with ``num_steps`` Euler or midpoint
steps. Everything happens in the normalised action space; ``predict_action_chunk`` unnormalises.
Shapes: B batch, H horizon, Da action dim, Dc conditioning dim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ttfkit.policies.base import ChunkPolicy, PolicyConfig
from ttfkit.policies.registry import register_policy

__all__ = ["FlowConfig", "FlowPolicy", "euler_sample", "midpoint_sample"]

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (t (B,), x (B, H, Da)) -> (B, H, Da)


@dataclass(frozen=True)
class FlowConfig(PolicyConfig):
    """``PolicyConfig`` plus the flow sampler.

    Args:
        num_steps: ODE integration steps from t=0 (noise) to t=1 (data).
        sampler: "euler" (1 network call per step) or "midpoint" (2 calls per step, second order).
    """

    num_steps: int = 10
    sampler: str = "euler"

    def __post_init__(self):
        super().__post_init__()
        if self.num_steps < 1:
            raise ValueError(f"FlowConfig: num_steps must be >= 1, got {self.num_steps=}")
        if self.sampler not in _SAMPLERS:
            raise ValueError(f"FlowConfig: sampler must be one of {sorted(_SAMPLERS)}, got {self.sampler=}")


@register_policy("flow", config=FlowConfig)
class FlowPolicy(ChunkPolicy):
    """Conditional flow matching on (B, H, Da) chunks; see the module docstring for conventions."""

    def velocity(self, t: torch.Tensor, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """u(t, x, cond): t (B,) in [0, 1], x (B, H, Da) normalised, cond (B, Dc) -> (B, H, Da)."""
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        return self.backbone(x, t.to(x), cond)

    def sample(self, cond: torch.Tensor, noise: torch.Tensor, num_steps: int | None = None,
               sampler: str | None = None) -> torch.Tensor:
        """Integrate from ``noise`` (B, H, Da) at t=0 to a normalised chunk at t=1. Pure."""
        integrate = _SAMPLERS[sampler or self.config.sampler]
        return integrate(lambda t, x: self.velocity(t, x, cond), noise, num_steps or self.config.num_steps)

    def _draw_loss_noise(self, batch_size, generator, device):
        shape = (batch_size, self.config.horizon, self.config.action_dim)
        return {"noise": torch.randn(shape, generator=generator, device=device),
                "t": torch.rand(batch_size, generator=generator, device=device)}

    def _loss(self, cond, actions, noise):
        eps, t = noise["noise"].to(actions), noise["t"].to(actions)  # (B, H, Da), (B,)
        tt = t[:, None, None]
        x_t = (1 - tt) * eps + tt * actions
        loss = F.mse_loss(self.velocity(t, x_t, cond), actions - eps)
        return loss, {"loss": loss.item()}

    def _sample(self, cond, noise, generator):
        return self.sample(cond, noise)


def euler_sample(velocity: VelocityFn, x0: torch.Tensor, num_steps: int) -> torch.Tensor:
    """x_{k+1} = x_k + h·u(t_k, x_k), h = 1/num_steps, t_k = k·h, from x0 (t=0) to t=1. Pure."""
    h = 1.0 / num_steps
    x = x0
    for k in range(num_steps):
        t = torch.full((x.shape[0],), k * h, device=x.device, dtype=x.dtype)
        x = x + h * velocity(t, x)
    return x


def midpoint_sample(velocity: VelocityFn, x0: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Explicit midpoint: x_{k+1} = x_k + h·u(t_k + h/2, x_k + (h/2)·u(t_k, x_k)). Pure."""
    h = 1.0 / num_steps
    x = x0
    for k in range(num_steps):
        t = torch.full((x.shape[0],), k * h, device=x.device, dtype=x.dtype)
        x_mid = x + 0.5 * h * velocity(t, x)
        x = x + h * velocity(t + 0.5 * h, x_mid)
    return x


_SAMPLERS = {"euler": euler_sample, "midpoint": midpoint_sample}
