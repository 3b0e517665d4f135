"""Shared machinery of chunk policies: normalisation, observation encoding, receding-horizon control.

A chunk policy predicts H actions at once from the last To observations. Time line (Diffusion
Policy / LeRobot convention), To=2, H=16, n_action_steps=8:

    obs:     o_{-1} o_0                      (index To-1 = "now")
    chunk:   a_{-1} a_0 a_1 ... a_14         (index 0 sits at the oldest observation)
    executed:       a_0 ... a_7              (chunk[To-1 : To-1+n_action_steps])

Subclasses (``FlowPolicy``, ``DiffusionPolicy``) implement the generative part: ``_draw_loss_noise``,
``_loss`` and ``_sample`` in the normalised action space ([-1, 1] under a min-max normaliser).
Legend: B batch, To obs steps, H horizon, Da action dim, Dc conditioning dim.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ttfkit.policies.backbones import backbone_config, make_backbone
from ttfkit.policies.encoders import EncoderConfig, ObsEncoder

__all__ = ["PolicyConfig", "ChunkPolicy"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolicyConfig:
    """Fields every chunk policy shares.

    Args:
        obs_shapes: per-key shape of ONE observation step in dataset units: (D,) for state keys,
            (3, H, W) for images (float in [0, 1], channels first). Required.
        action_dim: Da. Required.
        horizon: H, actions per predicted chunk.
        n_obs_steps: To, observations the policy conditions on (the last is "now").
        n_action_steps: actions executed from each chunk before predicting the next.
        action_key: dataset key of the action (also its normaliser key).
        backbone: "mlp", "unet" or "transformer" (``ttfkit.policies.backbones``).
        backbone_options: fields of that backbone's ``Config`` (e.g. {"down_dims": [256, 512, 1024]}).
        encoder: observation-encoder sizes.
    """

    obs_shapes: dict[str, tuple[int, ...]] | None = None
    action_dim: int = 0
    horizon: int = 16
    n_obs_steps: int = 2
    n_action_steps: int = 8
    action_key: str = "action"
    backbone: str = "mlp"
    backbone_options: dict = field(default_factory=dict)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)

    def __post_init__(self):
        if not self.obs_shapes:
            raise ValueError(f"{type(self).__name__}: obs_shapes is required, e.g. {{'agent_pos': (4,)}}; "
                             f"got {self.obs_shapes=}")
        object.__setattr__(self, "obs_shapes", {str(k): tuple(int(d) for d in v) for k, v in self.obs_shapes.items()})
        if self.action_dim < 1:
            raise ValueError(f"{type(self).__name__}: action_dim must be >= 1, got {self.action_dim=}")
        if self.n_obs_steps < 1 or self.n_action_steps < 1:
            raise ValueError(f"{type(self).__name__}: need n_obs_steps >= 1 and n_action_steps >= 1, "
                             f"got {self.n_obs_steps=}, {self.n_action_steps=}")
        if self.n_obs_steps - 1 + self.n_action_steps > self.horizon:
            raise ValueError(f"{type(self).__name__}: n_obs_steps - 1 + n_action_steps must be <= horizon, got "
                             f"{self.n_obs_steps=}, {self.n_action_steps=}, {self.horizon=}")
        if isinstance(self.encoder, dict):
            object.__setattr__(self, "encoder", EncoderConfig(**self.encoder))
        object.__setattr__(self, "backbone_options", dict(self.backbone_options))
        backbone_config(self.backbone, self.backbone_options)  # validates name and options


class ChunkPolicy(nn.Module):
    """Base class: encoder + backbone + normaliser + observation/action queues.

    Args:
        config: a ``PolicyConfig`` subclass.
        normalizer: ``ttfkit.data.Normalizer`` with stats for every obs key and the action key, or
            None (inputs already normalised; identity).
    """

    name: str = ""  # set by register_policy
    config_class: type = PolicyConfig

    def __init__(self, config: PolicyConfig, normalizer: nn.Module | None = None):
        super().__init__()
        self.config = config
        if normalizer is not None:
            have = set(normalizer.keys())
            missing = [k for k in (*config.obs_shapes, config.action_key) if k not in have]
            if missing:
                raise KeyError(f"normalizer has no stats for {missing}; it has {sorted(have)}")
        self.normalizer = normalizer
        self.encoder = ObsEncoder(config.obs_shapes, config.n_obs_steps, config.encoder)
        self.backbone = make_backbone(config.backbone, action_dim=config.action_dim, horizon=config.horizon,
                                      cond_dim=self.encoder.out_dim, options=config.backbone_options)
        self._obs_history: deque = deque(maxlen=config.n_obs_steps)
        self._action_queue: deque = deque()
        self._generator: torch.Generator | None = None

    # ----- subclass hooks (normalised action space) -----
    def _draw_loss_noise(self, batch_size: int, generator: torch.Generator | None,
                         device: torch.device) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _loss(self, cond: torch.Tensor, actions: torch.Tensor, noise: dict[str, torch.Tensor]):
        raise NotImplementedError

    def _sample(self, cond: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    # ----- public interface -----
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def num_params(self) -> int:
        """Trainable parameters (normaliser statistics are buffers and not counted)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def reset(self, seed: int | None = None) -> None:
        """Forget the observation history and the queued actions (call at every episode start).

        With ``seed``, later ``select_action`` calls without a generator draw their noise from a
        generator on the policy's device seeded with it (reproducible rollouts); otherwise from torch's global RNG.
        """
        self._obs_history.clear()
        self._action_queue.clear()
        if seed is not None:
            self._generator = torch.Generator(device=self.device).manual_seed(seed)

    def encode_obs(self, obs_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """{key: (B, To, *shape)} in dataset units -> cond (B, Dc). Normalises, then encodes."""
        self._check_obs(obs_batch)
        obs = {k: self._normalize(k, obs_batch[k].to(self.device)) for k in self.config.obs_shapes}
        return self.encoder(obs)

    def draw_loss_noise(self, batch_size: int, generator: torch.Generator | None = None,
                        device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """The random inputs of one loss evaluation (noise, times) for ``batch_size`` samples.

        Drawn for a whole global batch and sliced per rank, this makes data-parallel training see
        exactly the noise a single process would.
        """
        return self._draw_loss_noise(batch_size, generator, torch.device(device or self.device))

    def compute_loss(self, batch: dict, generator: torch.Generator | None = None,
                     noise: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """batch = {"obs": {key: (B, To, ...)}, "action": (B, H, Da)} in dataset units -> (loss, metrics).

        ``noise`` (from ``draw_loss_noise``) fixes the random inputs; else they come from ``generator``.
        """
        actions = batch[self.config.action_key] if self.config.action_key in batch else batch.get("action")
        if actions is None:
            raise KeyError(f"batch has no {self.config.action_key!r} (keys {sorted(batch)})")
        want = (self.config.horizon, self.config.action_dim)
        if actions.ndim != 3 or tuple(actions.shape[1:]) != want:
            raise ValueError(f"batch action must be (B, {want[0]}, {want[1]}), got {tuple(actions.shape)}")
        cond = self.encode_obs(batch["obs"])
        actions = self._normalize(self.config.action_key, actions.to(self.device))  # (B, H, Da)
        if noise is None:
            noise = self.draw_loss_noise(actions.shape[0], generator, actions.device)
        return self._loss(cond, actions, noise)

    def forward(self, batch: dict, generator: torch.Generator | None = None,
                noise: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """``compute_loss`` (so DistributedDataParallel, which syncs gradients through forward, wraps it)."""
        return self.compute_loss(batch, generator=generator, noise=noise)

    @torch.no_grad()
    def predict_action_chunk(self, obs_batch: dict[str, torch.Tensor], generator: torch.Generator | None = None,
                             noise: torch.Tensor | None = None) -> torch.Tensor:
        """{key: (B, To, ...)} in dataset units -> actions (B, H, Da) in dataset (unnormalised) units.

        ``noise`` (B, H, Da) is the initial sample; if None it is drawn from ``generator``.
        """
        cond = self.encode_obs(obs_batch)  # (B, Dc)
        shape = (cond.shape[0], self.config.horizon, self.config.action_dim)
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=cond.device, dtype=cond.dtype)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise must be {shape}, got {tuple(noise.shape)}")
        x = self._sample(cond, noise.to(cond), generator)  # (B, H, Da), normalised
        return self._unnormalize(self.config.action_key, x)

    @torch.no_grad()
    def select_action(self, obs: dict[str, np.ndarray | torch.Tensor],
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """One env step batched over envs (env units; pixels uint8 (B, H, W, 3)) -> actions (B, Da).

        Keeps the last To observations (the first one repeated at an episode start, as the dataset
        pads) and a queue of n_action_steps actions taken from chunk[To-1 : To-1+n_action_steps].
        """
        step = {k: self._env_to_dataset(k, obs) for k in self.config.obs_shapes}
        batch = next(iter(step.values())).shape[0]
        if self._obs_history and next(iter(self._obs_history[-1].values())).shape[0] != batch:
            raise ValueError(f"batch size changed from {next(iter(self._obs_history[-1].values())).shape[0]} "
                             f"to {batch} without reset()")
        if not self._obs_history:
            self._obs_history.extend([step] * self.config.n_obs_steps)
        else:
            self._obs_history.append(step)
        if not self._action_queue:
            obs_batch = {k: torch.stack([s[k] for s in self._obs_history], dim=1) for k in step}  # (B, To, ...)
            chunk = self.predict_action_chunk(obs_batch, generator=generator or self._generator)  # (B, H, Da)
            start = self.config.n_obs_steps - 1
            self._action_queue.extend(chunk[:, start:start + self.config.n_action_steps].unbind(dim=1))
        return self._action_queue.popleft()

    def save(self, path, **kwargs) -> None:
        """Write a checkpoint directory (see ``ttfkit.policies.checkpoint.save``)."""
        from ttfkit.policies.checkpoint import save

        save(self, path, **kwargs)

    # ----- helpers -----
    def _normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        return x if self.normalizer is None else self.normalizer.normalize(key, x)

    def _unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        return x if self.normalizer is None else self.normalizer.unnormalize(key, x)

    def _check_obs(self, obs_batch: dict[str, torch.Tensor]) -> None:
        sizes = set()
        for key, shape in self.config.obs_shapes.items():
            if key not in obs_batch:
                raise KeyError(f"observation batch has no {key!r} (keys {sorted(obs_batch)})")
            x = obs_batch[key]
            if x.ndim != 2 + len(shape) or x.shape[1] != self.config.n_obs_steps or tuple(x.shape[2:]) != shape:
                raise ValueError(f"observation {key!r} must be (B, {self.config.n_obs_steps}, "
                                 f"{', '.join(map(str, shape))}), got {tuple(x.shape)}")
            sizes.add(x.shape[0])
        if len(sizes) > 1:
            raise ValueError(f"observation keys disagree on the batch size: {sorted(sizes)}")

    def _env_to_dataset(self, key: str, obs: dict) -> torch.Tensor:
        """One env step of ``key`` (B, ...) -> dataset units on the policy's device."""
        if key not in obs:
            raise KeyError(f"observation has no {key!r} (keys {sorted(obs)})")
        x = torch.as_tensor(np.asarray(obs[key]) if not torch.is_tensor(obs[key]) else obs[key])
        shape = self.config.obs_shapes[key]
        if len(shape) == 3 and x.ndim == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
            x = x.permute(0, 3, 1, 2)  # (B, H, W, 3) -> (B, 3, H, W)
        if len(shape) == 3 and x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = x.to(self.device, torch.float32)
        if tuple(x.shape[1:]) != shape:
            raise ValueError(f"env observation {key!r} must be (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
        return x
