"""Shared machinery of chunk policies: normalisation, observation encoding, receding-horizon control.

A chunk policy predicts H actions at once from the last To observations. Time line (Diffusion
Policy / LeRobot convention), To=2, H=16, n_action_steps=8:

    obs:     o_{-1} o_0                      (index To-1 = "now")
    chunk:   a_{-1} a_0 a_1 ... a_14         (index 0 sits at the oldest observation)
    executed:       a_0 ... a_7              (chunk[To-1 : To-1+n_action_steps])

Batched control (evaluator protocol v2, ``ttfkit.envs.evaluate``): row j of ``select_action``'s batch
is slot j; ``reset_slot(j, seed)`` starts a new episode there with its own noise generator, and the
rows whose queue is empty are re-planned together through ``plan_chunks`` (the hook alignment wraps).

Subclasses (``FlowPolicy``, ``DiffusionPolicy``) implement the generative part: ``_draw_loss_noise``,
``_loss`` and ``_sample`` in the normalised action space ([-1, 1] under a min-max normaliser).
Legend: B batch, To obs steps, H horizon, Da action dim, Dc conditioning dim.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field, replace

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
    block_rows: int = 8  # rows per network call in predict_action_chunk (batch-size invariance)

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
        self._slots: list[_Slot] = []  # per-row receding-horizon state, rows in slot order
        self._generator: torch.Generator | None = None  # fallback noise source (reset(seed=...))

    # ----- subclass hooks (normalised action space) -----
    def _draw_loss_noise(self, batch_size: int, generator: torch.Generator | None,
                         device: torch.device) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _loss(self, cond: torch.Tensor, actions: torch.Tensor, noise: dict[str, torch.Tensor]):
        raise NotImplementedError

    def _sample(self, cond: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def _sampler_draws_noise(self) -> bool:
        """Whether ``_sample`` draws noise from ``generator`` beyond the initial sample."""
        return False

    # ----- public interface -----
    @property
    def device(self) -> torch.device:
        # cached: walking the parameters costs ~0.03 ms, paid several times per chunk at batch 1
        if getattr(self, "_device", None) is None:
            self._device = next(self.parameters()).device
        return self._device

    def _apply(self, fn, *args, **kwargs):
        self._device = None  # .to() / .cuda() / .float() may move the parameters
        return super()._apply(fn, *args, **kwargs)

    @property
    def num_params(self) -> int:
        """Trainable parameters (normaliser statistics are buffers and not counted)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def set_action_steps(self, n_action_steps: int) -> None:
        """Execute ``n_action_steps`` actions of each chunk before re-planning (deployment-time choice: the
        trained weights do not depend on it; fewer steps = more closed-loop feedback, more NFE per env step).
        Validated like the config (1 <= n, To - 1 + n <= H); call between episodes (clears the slots)."""
        self.config = replace(self.config, n_action_steps=n_action_steps)
        self._slots = []

    def reset(self, seed: int | None = None) -> None:
        """Forget every slot's observation history, queued actions and generator.

        With ``seed``, slots that get no seed of their own (``reset_slot(j)`` without one, or no
        ``reset_slot`` call at all) draw their noise from one generator on the policy's device seeded
        with it (reproducible rollouts); otherwise from torch's global RNG.
        """
        self._slots = []
        self._generator = None if seed is None else torch.Generator(device=self.device).manual_seed(seed)

    def reset_slot(self, slot: int, seed: int | None = None) -> None:
        """Start a new episode in row ``slot`` of the ``select_action`` batch (evaluator protocol v2).

        Clears that row's observation history and action queue; with ``seed`` (the episode's seed) the
        row's sampling noise comes from its own generator seeded with it, so the episode's actions do
        not depend on the other rows, on the batch size or on the order episodes are assigned to slots.
        """
        if slot < 0:
            raise ValueError(f"reset_slot: slot must be >= 0, got {slot=}")
        while len(self._slots) <= slot:
            self._slots.append(_Slot(self.config.n_obs_steps))
        gen = None if seed is None else torch.Generator(device=self.device).manual_seed(int(seed))
        self._slots[slot] = _Slot(self.config.n_obs_steps, gen)

    def slot_generator(self, slot: int) -> torch.Generator | None:
        """Slot ``slot``'s noise generator: its episode's (``reset_slot(j, seed)``), else the policy's
        (``reset(seed)``), else None (torch's global RNG)."""
        own = self._slots[slot].generator if slot < len(self._slots) else None
        return own if own is not None else self._generator

    def encode_obs(self, obs_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """{key: (B, To, *shape)} in dataset units -> cond (B, Dc). Normalises, then encodes."""
        self._check_obs(obs_batch)
        return self.encoder.encode(*self._prepare_obs(obs_batch))

    def _prepare_obs(self, obs_batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """A batch that ``_check_obs`` passed -> (the low-dim keys joined in the encoder's order and normalised,
        (B, To, sum D), or None; {image key: normalised (B, To, C, H, W)}), float32 on the policy's device.

        Joining first makes normalisation and the finite check one op each instead of one per key; the values
        equal per-key normalisation bit for bit."""
        device, enc = self.device, self.encoder
        state = None
        if enc.lowdim_keys:
            parts = {k: _obs_float32(k, obs_batch[k]) for k in enc.lowdim_keys}
            state = enc.join_state(parts).to(device)
            if self.check_finite_obs and not bool(torch.isfinite(state).all()):
                _raise_non_finite(parts)
            if self.normalizer is not None:
                scale, offset = self._state_affine()
                state = state * scale + offset
        images = {}
        for k in enc.image_keys:
            x = _obs_float32(k, obs_batch[k]).to(device)
            if self.check_finite_obs and not bool(torch.isfinite(x).all()):
                _raise_non_finite({k: x})
            images[k] = self._normalize(k, x)
        return state, images

    def _state_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, offset) (sum D,) of the joined low-dim keys, cached because building them costs a few kernel calls
        per chunk; rebuilt when the normaliser's buffers change (data pointer, version)."""
        affine = {k: self.normalizer.affine(k) for k in self.encoder.lowdim_keys}
        key = tuple((t.data_ptr(), t._version) for pair in affine.values() for t in pair)
        if getattr(self, "_state_affine_key", None) != key:
            self._state_affine_value = tuple(self.encoder.join_state(
                {k: a[i].expand(self.config.obs_shapes[k]) for k, a in affine.items()}) for i in (0, 1))
            self._state_affine_key = key
        return self._state_affine_value

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
    def encode_obs_blocks(self, obs_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``encode_obs`` computed in blocks of exactly ``block_rows`` rows (see ``predict_action_chunk``),
        so a row's features do not depend on the batch it came in (aligned policies, critic records)."""
        out = [cond[:rows.stop - rows.start] for rows, cond in self._cond_blocks(obs_batch)]
        return out[0] if len(out) == 1 else torch.cat(out)

    def _cond_blocks(self, obs_batch: dict[str, torch.Tensor]):
        """Checks and prepares the batch once, then yields (rows, cond (block_rows, Dc)) per block of rows, the
        last block padded with copies of its first row (padded cond rows are kept for the sampler's block)."""
        self._check_obs(obs_batch)
        state, images = self._prepare_obs(obs_batch)
        n, size = next(iter(obs_batch.values())).shape[0], self.block_rows
        for start in range(0, n, size):
            rows = slice(start, min(n, start + size))
            yield rows, self.encoder.encode(None if state is None else _pad_rows(state[rows], size),
                                            {k: _pad_rows(v[rows], size) for k, v in images.items()})

    @torch.no_grad()
    def predict_action_chunk(self, obs_batch: dict[str, torch.Tensor], generator: torch.Generator | None = None,
                             noise: torch.Tensor | None = None) -> torch.Tensor:
        """{key: (B, To, ...)} in dataset units -> actions (B, H, Da) in dataset (unnormalised) units.

        ``noise`` (B, H, Da) is the initial sample (normalised units); if None it is drawn from
        ``generator``. Rows are computed in blocks of exactly ``block_rows`` (the last block padded
        with copies of its first row), so a row's chunk does not depend on the batch it came in:
        CPU kernels pick different reduction orders for different batch sizes (measured: rows of a
        batch of 1-3 differ in the last bits from the same rows in a batch of 8).
        """
        n = next(iter(obs_batch.values())).shape[0]
        shape = (n, self.config.horizon, self.config.action_dim)
        if noise is not None and tuple(noise.shape) != shape:
            raise ValueError(f"noise must be {shape}, got {tuple(noise.shape)}")
        blocks = list(self._cond_blocks(obs_batch))  # checks the observations before any noise is drawn
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=self.device)
        chunks = [self._sample(cond, _pad_rows(noise[rows], self.block_rows).to(cond), generator)
                  [:rows.stop - rows.start] for rows, cond in blocks]  # (b, H, Da) each, normalised
        return self._unnormalize(self.config.action_key, chunks[0] if len(chunks) == 1 else torch.cat(chunks))

    @torch.no_grad()
    def plan_chunks(self, obs_batch: dict[str, torch.Tensor], slots: list[int]) -> torch.Tensor:
        """New chunks for the rows ``slots`` (those whose action queue ran empty) in one call.

        Args:
            obs_batch: {key: (b, To, ...)} dataset units, row i belongs to slot ``slots[i]``.
            slots: the rows' slot indices.

        Returns:
            (b, H, Da) in dataset units, as ``predict_action_chunk`` returns them. The default draws
            row i's initial noise (H, Da) from ``slot_generator(slots[i])``; samplers that draw more
            noise while sampling (DDPM, DDIM with eta > 0) run one row at a time on its slot's
            generator, so every episode's chunks are reproducible from its seed alone. Override (or
            wrap) this to change how chunks are chosen (``ttfkit.align``).
        """
        shape = (self.config.horizon, self.config.action_dim)
        noise = torch.stack([torch.randn(shape, generator=self.slot_generator(j), device=self.device)
                             for j in slots])  # (b, H, Da)
        if not self._sampler_draws_noise():
            return self.predict_action_chunk(obs_batch, noise=noise)
        return torch.cat([self.predict_action_chunk({k: v[i:i + 1] for k, v in obs_batch.items()},
                                                    generator=self.slot_generator(j), noise=noise[i:i + 1])
                          for i, j in enumerate(slots)])

    @torch.no_grad()
    def select_action(self, obs: dict[str, np.ndarray | torch.Tensor],
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """One env step batched over slots (env units; pixels uint8 (B, H, W, 3)) -> actions (B, Da).

        Row j is slot j. Each slot keeps its last To observations (the first one repeated at an
        episode start, as the dataset pads) and a queue of n_action_steps actions taken from
        chunk[To-1 : To-1+n_action_steps]. The rows whose queue is empty are re-planned together with
        one ``plan_chunks`` call. ``generator``, when given, replaces every slot's generator for
        this call's noise. Slots start empty after ``reset()``; ``reset_slot(j, seed)`` starts a new
        episode in one row.
        """
        step = {k: self._env_to_dataset(k, obs) for k in self.config.obs_shapes}
        batch = next(iter(step.values())).shape[0]
        if self._slots and len(self._slots) != batch:
            raise ValueError(f"batch size changed from {len(self._slots)} to {batch} without reset()")
        while len(self._slots) < batch:
            self._slots.append(_Slot(self.config.n_obs_steps))
        for j, slot in enumerate(self._slots):
            slot.observe({k: v[j] for k, v in step.items()})
        need = [j for j, slot in enumerate(self._slots) if not slot.queue]
        if need:
            obs_batch = {k: torch.stack([self._slots[j].history(k) for j in need]) for k in step}  # (b, To, ...)
            if generator is not None:
                saved = [(s, s.generator) for s in self._slots]
                for s in self._slots:
                    s.generator = generator
            try:
                chunk = self.plan_chunks(obs_batch, need)  # (b, H, Da)
            finally:
                if generator is not None:
                    for s, g in saved:
                        s.generator = g
            start = self.config.n_obs_steps - 1
            for i, j in enumerate(need):
                self._slots[j].queue.extend(chunk[i, start:start + self.config.n_action_steps].unbind(dim=0))
        return torch.stack([slot.queue.popleft() for slot in self._slots])  # (B, Da)

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

    #: Observations holding NaN or inf are refused with an error naming the key (they would give NaN
    #: actions silently); set False on a policy whose caller handles them itself.
    check_finite_obs: bool = True

    def _env_to_dataset(self, key: str, obs: dict) -> torch.Tensor:
        """One env step of ``key`` (B, ...) -> dataset units on the policy's device."""
        if key not in obs:
            raise KeyError(f"observation has no {key!r} (keys {sorted(obs)})")
        x = torch.as_tensor(np.asarray(obs[key]) if not torch.is_tensor(obs[key]) else obs[key])
        shape = self.config.obs_shapes[key]
        if len(shape) == 3 and x.ndim == 4 and tuple(x.shape[1:]) == (*shape[1:], shape[0]) \
                and tuple(x.shape[1:]) != shape:
            x = x.permute(0, 3, 1, 2)  # env images (B, H, W, C) -> (B, C, H, W): RGB, depth (C = 1), ...
        if len(shape) == 3 and x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = x.to(self.device, torch.float32)
        if tuple(x.shape[1:]) != shape:
            raise ValueError(f"env observation {key!r} must be (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
        return x


def _obs_float32(key: str, x: torch.Tensor) -> torch.Tensor:
    """Observation ``key`` as float32: any floating dtype is accepted, other dtypes are refused."""
    if not torch.is_floating_point(x):
        raise TypeError(f"observation {key!r} must hold floating-point dataset units, got {x.dtype} "
                        f"(images: uint8 / 255)")
    return x.float()


def _raise_non_finite(obs: dict[str, torch.Tensor]) -> None:
    """Raise naming the first key of ``obs`` (float32 values) that holds NaN or inf, and where."""
    for key, x in obs.items():
        if not bool(torch.isfinite(x).all()):
            bad = (~torch.isfinite(x)).nonzero()[0].tolist()
            raise ValueError(f"observation {key!r} holds a non-finite value {x[tuple(bad)].item()} at index "
                             f"{tuple(bad)} (B, To, ...) as float32; set policy.check_finite_obs = False to pass "
                             f"such observations through")


class _Slot:
    """One row's receding-horizon state: last To observations, queued actions, noise generator."""

    def __init__(self, n_obs_steps: int, generator: torch.Generator | None = None):
        self.steps: deque = deque(maxlen=n_obs_steps)  # of {key: (...)} dataset units
        self.queue: deque = deque()  # of (Da,) actions
        self.generator = generator

    def observe(self, step: dict[str, torch.Tensor]) -> None:
        if not self.steps:
            self.steps.extend([step] * self.steps.maxlen)  # episode start: pad with the first obs
        else:
            self.steps.append(step)

    def history(self, key: str) -> torch.Tensor:
        return torch.stack([s[key] for s in self.steps])  # (To, ...)


def _pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """(b, ...) -> (rows, ...) with copies of row 0 appended (b <= rows)."""
    if x.shape[0] == rows:
        return x
    return torch.cat([x, x[:1].expand(rows - x.shape[0], *x.shape[1:])])
