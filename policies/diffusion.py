"""Diffusion policy on action chunks (Chi et al., "Diffusion Policy", RSS 2023; Ho et al. 2020 DDPM;
Song et al. 2021 DDIM), with diffusers' ``DDPMScheduler`` / ``DDIMScheduler`` as the update rules.

Convention: diffusion step k in {0, ..., K-1}, k=0 nearly clean; forward process
x_k = sqrt(abar_k)·a + sqrt(1 - abar_k)·eps. The backbone sees time k / K in [0, 1) and predicts eps
("epsilon") or a ("sample"). Training: uniform k, MSE to the target. Sampling: DDPM (ancestral, K
steps by default) or DDIM (``num_inference_steps``, ``ddim_eta`` = 0 deterministic), started from
noise (B, H, Da), all in the normalised action space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ttfkit.policies.base import ChunkPolicy, PolicyConfig
from ttfkit.policies.registry import register_policy

__all__ = ["DiffusionConfig", "DiffusionPolicy", "diffusion_sample", "make_scheduler"]

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (k (B,) long, x (B, H, Da)) -> (B, H, Da)


@dataclass(frozen=True)
class DiffusionConfig(PolicyConfig):
    """``PolicyConfig`` plus the noise schedule and sampler.

    Args:
        num_train_timesteps: K, diffusion steps of the forward process.
        beta_schedule: diffusers beta schedule ("squaredcos_cap_v2", "linear", "scaled_linear").
        prediction_type: "epsilon" (predict the noise) or "sample" (predict the clean chunk).
        sampler: "ddim" or "ddpm".
        num_inference_steps: denoising steps at inference (DDPM default: K).
        ddim_eta: DDIM stochasticity (0: deterministic given the initial noise; 1: DDPM-like).
        clip_sample: clip the predicted clean chunk to [-clip_sample_range, clip_sample_range].
        clip_sample_range: see clip_sample.
    """

    num_train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"
    sampler: str = "ddim"
    num_inference_steps: int = 10
    ddim_eta: float = 0.0
    clip_sample: bool = True
    clip_sample_range: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if self.num_train_timesteps < 2:
            raise ValueError(f"DiffusionConfig: num_train_timesteps must be >= 2, got {self.num_train_timesteps=}")
        if self.prediction_type not in ("epsilon", "sample"):
            raise ValueError(f"DiffusionConfig: prediction_type must be 'epsilon' or 'sample', got {self.prediction_type=}")
        if self.sampler not in ("ddim", "ddpm"):
            raise ValueError(f"DiffusionConfig: sampler must be 'ddim' or 'ddpm', got {self.sampler=}")
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ValueError(f"DiffusionConfig: num_inference_steps must lie in [1, {self.num_train_timesteps}], "
                             f"got {self.num_inference_steps=}")
        if self.ddim_eta < 0:
            raise ValueError(f"DiffusionConfig: ddim_eta must be >= 0, got {self.ddim_eta=}")
        if self.beta_schedule not in ("squaredcos_cap_v2", "linear", "scaled_linear"):
            raise ValueError(f"DiffusionConfig: unknown beta_schedule {self.beta_schedule!r}")


@register_policy("diffusion", config=DiffusionConfig)
class DiffusionPolicy(ChunkPolicy):
    """DDPM-trained denoiser on (B, H, Da) chunks; DDPM or DDIM sampling."""

    def __init__(self, config: DiffusionConfig, normalizer=None):
        super().__init__(config, normalizer)
        self.train_scheduler = make_scheduler("ddpm", config)

    def denoise(self, k: torch.Tensor, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Network output (eps or clean chunk) at integer steps k (B,) for x (B, H, Da)."""
        return self.backbone(x, k.to(x.dtype) / self.config.num_train_timesteps, cond)

    def sample(self, cond: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None = None,
               sampler: str | None = None, num_inference_steps: int | None = None) -> torch.Tensor:
        """Denoise ``noise`` (B, H, Da) to a normalised chunk with the configured (or given) sampler."""
        kind = sampler or self.config.sampler
        steps = num_inference_steps or (self.config.num_inference_steps if kind == "ddim"
                                        else self.config.num_train_timesteps)
        return diffusion_sample(make_scheduler(kind, self.config), lambda k, x: self.denoise(k, x, cond),
                                noise, steps, generator=generator, eta=self.config.ddim_eta)

    def _draw_loss_noise(self, batch_size, generator, device):
        shape = (batch_size, self.config.horizon, self.config.action_dim)
        return {"noise": torch.randn(shape, generator=generator, device=device),
                "timesteps": torch.randint(0, self.config.num_train_timesteps, (batch_size,),
                                           generator=generator, device=device)}

    def _loss(self, cond, actions, noise):
        eps, k = noise["noise"].to(actions), noise["timesteps"].to(actions.device)
        noisy = self.train_scheduler.add_noise(actions, eps, k)  # (B, H, Da)
        target = eps if self.config.prediction_type == "epsilon" else actions
        loss = F.mse_loss(self.denoise(k, noisy, cond), target)
        return loss, {"loss": loss.item()}

    def _sample(self, cond, noise, generator):
        return self.sample(cond, noise, generator)

    def _sampler_draws_noise(self) -> bool:
        return self.config.sampler == "ddpm" or self.config.ddim_eta > 0


def make_scheduler(kind: str, config: DiffusionConfig):
    """A fresh diffusers ``DDPMScheduler`` ("ddpm") or ``DDIMScheduler`` ("ddim") for ``config``."""
    from diffusers import DDIMScheduler, DDPMScheduler

    common = dict(num_train_timesteps=config.num_train_timesteps, beta_schedule=config.beta_schedule,
                  clip_sample=config.clip_sample, clip_sample_range=config.clip_sample_range,
                  prediction_type=config.prediction_type)
    if kind == "ddpm":
        return DDPMScheduler(variance_type="fixed_small", **common)
    if kind == "ddim":
        return DDIMScheduler(set_alpha_to_one=True, steps_offset=0, **common)
    raise ValueError(f"unknown diffusion sampler {kind!r}; choose 'ddpm' or 'ddim'")


def diffusion_sample(scheduler, denoise: DenoiseFn, noise: torch.Tensor, num_inference_steps: int,
                     generator: torch.Generator | None = None, eta: float = 0.0) -> torch.Tensor:
    """Run ``scheduler``'s reverse process from ``noise`` (B, H, Da). Mutates only ``scheduler``.

    ``denoise(k, x)`` returns the model output at integer steps k (B,). DDPM draws its per-step
    noise from ``generator`` (and DDIM too when eta > 0), so a seeded generator gives one chunk.
    """
    from diffusers import DDIMScheduler

    scheduler.set_timesteps(num_inference_steps, device=noise.device)
    extra = {"eta": eta} if isinstance(scheduler, DDIMScheduler) else {}
    x = noise
    for k in scheduler.timesteps:
        out = denoise(torch.full((x.shape[0],), int(k), device=x.device, dtype=torch.long), x)
        x = scheduler.step(out, k, x, generator=generator, **extra).prev_sample
    return x
