"""Training loop for chunk policies: ``TrainConfig`` + ``train(config)`` (behind ``ttf train``).

Reproducibility by construction: each step's batch indices and loss noise are pure functions of
(seed, step) (``_step_generator``): the sample order is an epoch-wise permutation seeded by
(seed, epoch), sliced by step, and the noise/times are drawn for the whole global batch and sliced
per rank. Nothing in the loop reads a stateful iterator or the global RNG, so ``resume`` continues
bit for bit on CPU and a W-process DDP run sees exactly the batch and noise of one process.

Run directory::

    RUN_DIR/train_config.json              resolved TrainConfig
    RUN_DIR/metrics.csv                    step, train_loss, val_loss, lr, grad_norm, samples_per_s
    RUN_DIR/checkpoints/step_XXXXXX/       policy checkpoint (+ EMA) + trainer state (optimizer,
                                           scheduler, EMA count, metric accumulators)
    RUN_DIR/tensorboard/train/, RUN_DIR/wandb/   with ``log`` (``ttfkit.policies.loggers``): each
                                           metrics.csv row, val loss at checkpoints

Faults: a non-finite loss or gradient norm stops the run with ``FloatingPointError`` naming the
step (no checkpoint is written for it). One process trains a run directory at a time (a lock,
``RUN_DIR/.ttfkit.lock``). Resume takes the newest checkpoint that loads completely; a damaged newer
one is renamed ``step_XXXXXX.damaged-<id>`` and the log says why. Temporary checkpoint folders left
by a crash are removed. A run directory may be moved (``out`` is not compared on resume). A fresh run
refuses an existing folder that holds anything but a ttfkit run.

Validation loss is computed on held-out *episodes* (``val_fraction``) with the EMA weights, on a
fixed subset of windows with fixed noise and times (a generator seeded by ``seed`` alone), so values
are comparable across checkpoints. LR: linear warmup, then cosine decay to ``min_lr_ratio`` · lr.
The normaliser is fitted on every episode of the store (train and validation), as its statistics
only fix the action/observation ranges.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, default_collate

from ttfkit.data.atomic import artefact_kind, write_marker

__all__ = ["TrainConfig", "train"]

logger = logging.getLogger(__name__)

_METRIC_FIELDS = ("step", "train_loss", "val_loss", "lr", "grad_norm", "samples_per_s")
_CKPT_RE = re.compile(r"^step_(\d{6,})$")
_RUN_KIND = "train-run"  # ttfkit.data.atomic marker of a run directory


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (saved as RUN_DIR/train_config.json).

    Args:
        dataset: path of a zarr store (``ttfkit.data.ReplayBuffer`` layout).
        out: run directory.
        policy: registered policy name ("flow", "diffusion").
        backbone: "mlp", "unet" or "transformer".
        optim: optimizer registry name ("adamw", "muon", "dopr-adamw", "dopr-muon").
        steps: optimizer steps.
        batch: global batch size (split evenly over DDP ranks).
        lr: peak learning rate.
        weight_decay: decoupled weight decay (matrices only, see ttfkit.optim).
        warmup_steps: linear warmup steps.
        min_lr_ratio: final LR as a fraction of ``lr`` at the end of the cosine.
        grad_clip: max global gradient norm (0 disables clipping; the norm is still logged).
        ckpt_every: checkpoint (and validate) every this many steps, and at the last step.
        log_every: write a metrics row every this many steps (train loss averaged over them).
        seed: seed of initialisation, data order, loss noise and (unless ``split_seed`` is set) the validation
            split and the validation loss's fixed noise.
        split_seed: seed of the validation split and of the validation loss's fixed noise; None: ``seed``. Give
            every training seed of a study the same ``split_seed`` to train them on the same episodes and compare
            their validation losses on the same windows and noise.
        val_fraction: fraction of episodes held out for validation (0: no validation).
        val_max_samples: validation windows used (an evenly spaced, fixed subset).
        horizon: H.
        n_obs_steps: To.
        n_action_steps: actions executed per chunk.
        obs_keys: observation keys of the dataset used by the policy.
        filter_key: train (and validate) only on the store's named episode list (robomimic's ``mask/``
            filter keys, e.g. "train" or "20_percent"); the normaliser is fitted on the whole store.
        action_key: dataset action key.
        normalizer_mode: "minmax" or "meanstd" for state keys (images are fixed [0,1] -> [-1,1]).
        ema: keep an EMA of the weights (used for validation and saved for evaluation).
        ema_power: EMA warmup power (see ttfkit.policies.ema).
        ema_max_decay: EMA decay ceiling.
        policy_options: extra policy config fields, e.g. {"num_steps": 5} or {"encoder": {...}}.
        backbone_options: backbone config fields, e.g. {"down_dims": [256, 512, 1024]}.
        optim_options: extra optimizer config fields, e.g. {"damping": 1e-3} for dopr-adamw.
        num_workers: DataLoader worker processes.
        stream: read training windows from the store's zarr chunks through a bounded cache instead of
            loading the used keys into memory (``SequenceDataset(in_memory=False)``; stores larger than memory).
        cache_mb: chunk-cache budget in MiB with ``stream`` (shared by the DataLoader workers).
        device: "cpu", "cuda" (each DDP rank uses cuda:LOCAL_RANK) or "auto".
        log: experiment loggers fed every metrics row ("tensorboard", "wandb" in offline mode; see
            ``ttfkit.policies.loggers``); not compared on resume (logging changes no result).
        amp: bf16 autocast of the forward pass and loss (weights, gradients and optimizer state stay
            float32); for GPUs with bf16 tensor cores.
    """

    dataset: str
    out: str
    policy: str = "flow"
    backbone: str = "mlp"
    optim: str = "adamw"
    steps: int = 2000
    batch: int = 256
    lr: float = 3e-4
    weight_decay: float = 1e-6
    warmup_steps: int = 100
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    ckpt_every: int = 1000
    log_every: int = 10
    seed: int = 0
    split_seed: int | None = None
    val_fraction: float = 0.1
    val_max_samples: int = 1024
    horizon: int = 16
    n_obs_steps: int = 2
    n_action_steps: int = 8
    obs_keys: tuple[str, ...] = ("agent_pos", "environment_state")
    filter_key: str | None = None
    action_key: str = "action"
    normalizer_mode: str = "minmax"
    ema: bool = True
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    policy_options: dict = field(default_factory=dict)
    backbone_options: dict = field(default_factory=dict)
    optim_options: dict = field(default_factory=dict)
    num_workers: int = 0
    stream: bool = False
    cache_mb: float = 256.0
    device: str = "cpu"
    amp: bool = False
    log: tuple[str, ...] = ()

    def __post_init__(self):
        from ttfkit.policies.loggers import check_logger_names

        object.__setattr__(self, "obs_keys", tuple(self.obs_keys))
        try:
            object.__setattr__(self, "log", check_logger_names(self.log))
        except ValueError as err:
            raise ValueError(f"TrainConfig: {err}") from None
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"TrainConfig: {f.name} must be finite, got {value!r}")
        if not 0.0 <= self.ema_max_decay < 1.0 or not self.ema_power > 0:
            raise ValueError(f"TrainConfig: ema_max_decay must lie in [0, 1) and ema_power be > 0, got "
                             f"{self.ema_max_decay=}, {self.ema_power=}")
        if self.weight_decay < 0:
            raise ValueError(f"TrainConfig: weight_decay must be >= 0, got {self.weight_decay=}")
        for name in ("steps", "batch", "ckpt_every", "log_every", "val_max_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig: {name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig: lr must be > 0, got {self.lr=}")
        if self.warmup_steps < 0 or self.grad_clip < 0 or self.num_workers < 0:
            raise ValueError(f"TrainConfig: warmup_steps, grad_clip, num_workers must be >= 0, got "
                             f"{self.warmup_steps=}, {self.grad_clip=}, {self.num_workers=}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"TrainConfig: min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio=}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"TrainConfig: val_fraction must lie in [0, 1), got {self.val_fraction=}")
        if not self.obs_keys:
            raise ValueError("TrainConfig: obs_keys is empty")
        if self.normalizer_mode not in ("minmax", "meanstd"):
            raise ValueError(f"TrainConfig: normalizer_mode must be 'minmax' or 'meanstd', got {self.normalizer_mode!r}")
        if not self.cache_mb > 0:
            raise ValueError(f"TrainConfig: cache_mb must be > 0, got {self.cache_mb=}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"TrainConfig: device must be 'cpu', 'cuda' or 'auto', got {self.device!r}")
        reserved = {"obs_shapes", "action_dim", "horizon", "n_obs_steps", "n_action_steps", "action_key",
                    "backbone", "backbone_options"} & set(self.policy_options)
        if reserved:
            raise ValueError(f"TrainConfig: policy_options may not set {sorted(reserved)}; use the TrainConfig fields")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        from ttfkit.policies.registry import config_from_dict

        return config_from_dict(cls, data)


def train(config: TrainConfig, resume: bool = False,
          progress: Callable[[int, dict[str, float]], None] | None = None) -> Path:
    """Train; returns the last checkpoint directory.

    ``resume`` continues from the newest checkpoint in ``config.out`` (whose train_config.json must
    equal ``config``). ``progress(step, metrics)`` is called on rank 0 after every step (for a
    progress bar). Under ``torchrun`` (WORLD_SIZE > 1) runs DDP: gloo on CPU, nccl on CUDA.
    """
    from ttfkit.data import Normalizer, ReplayBuffer, SequenceDataset
    from ttfkit.optim import make_optimizer
    from ttfkit.policies.checkpoint import save
    from ttfkit.policies.ema import EMA, EMAConfig
    from ttfkit.policies.registry import make_policy

    from ttfkit.policies.loggers import ExperimentLog, open_loggers, train_metrics

    rank, world, device, owns_group = _init_distributed(config.device)
    run_lock = None
    experiment = ExperimentLog([])
    try:
        if config.batch % world:
            raise ValueError(f"global batch {config.batch} must be divisible by the {world} DDP processes")
        run = Path(config.out)
        ckpt_root = run / "checkpoints"
        if rank == 0:
            _check_is_run_folder(run)
            run_lock = _lock_run(run)
            _remove_stale_temporaries(ckpt_root)
        candidates = _checkpoints(ckpt_root)
        if resume:
            if not candidates:
                raise FileNotFoundError(f"--resume: no checkpoint under {ckpt_root}")
            _check_same_config(run / "train_config.json", config)
        elif candidates:
            raise FileExistsError(f"{run} already has checkpoints ({candidates[0].name}); pass --resume or a new --out")
        if rank == 0:
            write_marker(run, _RUN_KIND)
            _write_json_atomic(run / "train_config.json", config.to_dict())

        buffer = ReplayBuffer.open(config.dataset, mode="r")
        window = dict(horizon=config.horizon, n_obs_steps=config.n_obs_steps, n_action_steps=config.n_action_steps,
                      obs_keys=config.obs_keys, action_key=config.action_key, seed=_split_seed(config),
                      val_fraction=config.val_fraction, in_memory=not config.stream, cache_mb=config.cache_mb,
                      filter_key=config.filter_key)
        train_set = SequenceDataset(buffer, split="train", **window)
        val_set = SequenceDataset(buffer, split="val", **window) if config.val_fraction > 0 else None
        sample = train_set[0]
        normalizer = Normalizer.fit(buffer, [*config.obs_keys, config.action_key], mode=config.normalizer_mode)

        with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG left untouched
            torch.manual_seed(config.seed)
            policy = make_policy(config.policy, normalizer=normalizer,
                                 obs_shapes={k: tuple(v.shape[1:]) for k, v in sample["obs"].items()},
                                 action_dim=int(sample["action"].shape[-1]), horizon=config.horizon,
                                 n_obs_steps=config.n_obs_steps, n_action_steps=config.n_action_steps,
                                 action_key=config.action_key, backbone=config.backbone,
                                 backbone_options=config.backbone_options, **config.policy_options).to(device)
        # EMA copies the policy before the optimizer exists: optimizers that hook modules (DoPr) must
        # not find their hooks duplicated on the shadow copy.
        ema = EMA(policy, EMAConfig(power=config.ema_power, max_decay=config.ema_max_decay)) if config.ema else None
        optimizer = make_optimizer(config.optim, policy, lr=config.lr, weight_decay=config.weight_decay,
                                   **config.optim_options)
        scheduler = _lr_scheduler(optimizer, config)
        acc = {"loss": 0.0, "grad_norm": 0.0, "count": 0}
        start = 0
        last = None
        if resume:
            for cand in candidates:  # newest first
                try:
                    acc, start = _load_resume_state(cand, policy, optimizer, scheduler, ema)
                    last = cand
                    break
                except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
                    if world > 1:
                        raise  # ranks must agree; no per-rank fallback
                    aside = cand.with_name(f"{cand.name}.damaged-{uuid.uuid4().hex[:6]}")
                    try:  # kept for inspection, out of the way of the step that will be saved again
                        os.rename(cand, aside)
                    except OSError as move_err:
                        aside = f"nowhere ({move_err})"
                    logger.warning("resume: skipping %s (%s: %s); moved it to %s", cand,
                                   type(err).__name__, err, getattr(aside, "name", aside))
            if last is None:
                raise ValueError(f"--resume: no checkpoint under {ckpt_root} loads (each one skipped "
                                 f"is named in the log above and was moved aside)")
            logger.info("resumed %s at step %d from %s", run, start, last.name)
        if rank == 0:
            _truncate_metrics(run / "metrics.csv", start)
            experiment = open_loggers(config.log, run, kind="train", name=run.name,
                                      config=config.to_dict(), purge_from=start + 1)

        logger.info("training %s/%s (%d params) with %s on %s, world size %d, %d train windows, steps %d..%d",
                    config.policy, config.backbone, policy.num_params, config.optim, device, world,
                    len(train_set), start + 1, config.steps)
        model = policy
        if world > 1:
            model = torch.nn.parallel.DistributedDataParallel(
                policy, device_ids=[device.index] if device.type == "cuda" else None)
        per_rank = config.batch // world
        loader = DataLoader(train_set, batch_sampler=_StepBatches(len(train_set), config, start, rank, world),
                            num_workers=config.num_workers, collate_fn=default_collate)
        val_loss = float("nan")
        last_row_time, last_row_step = time.perf_counter(), start
        step = start
        ckpt = last
        for step, batch in enumerate(loader, start=start + 1):
            policy.train()
            noise = policy.draw_loss_noise(config.batch, _step_generator(config.seed, step, 1), "cpu")
            noise = {k: v[rank * per_rank:(rank + 1) * per_rank].to(device) for k, v in noise.items()}
            batch = _to_device(batch, device)
            # Training-mode augmentation (the image encoders' random crops) draws from the global CPU
            # RNG: seeding it per step keeps a run a pure function of (seed, step) and resumable.
            with torch.random.fork_rng(devices=[]), \
                    torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp):
                torch.manual_seed(_step_generator(config.seed, step, 3).initial_seed() + rank)
                loss, _ = model(batch, noise=noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(),
                                                       config.grad_clip if config.grad_clip > 0 else math.inf)
            if not (math.isfinite(grad_norm.item()) and (world > 1 or math.isfinite(loss.item()))):
                raise FloatingPointError(
                    f"{run}: step {step}: non-finite {'loss ' + str(loss.item()) if world == 1 else 'loss'}"
                    f" / gradient norm {grad_norm.item()}; stopped before the update (lr "
                    f"{scheduler.get_last_lr()[0]:.3g}). Last checkpoint: {ckpt or 'none'}")
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update(policy)
            loss_value = loss.detach()
            if world > 1:
                torch.distributed.all_reduce(loss_value)
                loss_value /= world
            acc = {"loss": acc["loss"] + loss_value.item(), "grad_norm": acc["grad_norm"] + grad_norm.item(),
                   "count": acc["count"] + 1}
            is_ckpt = step % config.ckpt_every == 0 or step == config.steps
            if is_ckpt and rank == 0:
                val_loss = _validate(ema.shadow if ema is not None else policy, val_set, config, device)
            if rank == 0 and (step % config.log_every == 0 or is_ckpt):
                now = time.perf_counter()
                row = {"step": step, "train_loss": acc["loss"] / acc["count"],
                       "val_loss": val_loss if is_ckpt else "", "lr": scheduler.get_last_lr()[0],
                       "grad_norm": acc["grad_norm"] / acc["count"],
                       "samples_per_s": (step - last_row_step) * config.batch / max(now - last_row_time, 1e-9)}
                _append_metrics(run / "metrics.csv", row)
                experiment.log(train_metrics(row, config.batch), step)
                acc = {"loss": 0.0, "grad_norm": 0.0, "count": 0}
                last_row_time, last_row_step = now, step
            if is_ckpt:
                ckpt = ckpt_root / f"step_{step:06d}"
                if rank == 0:
                    trainer_state = {"step": step, "optimizer": optimizer.state_dict(),
                                     "scheduler": scheduler.state_dict(),
                                     "ema_updates": ema.n_updates if ema is not None else 0,
                                     "accumulators": acc}
                    metadata = {"train_config": config.to_dict(), "step": step, "val_loss": _finite_or_none(val_loss),
                                "train_episodes": train_set.episode_indices.tolist(),
                                "val_episodes": val_set.episode_indices.tolist() if val_set is not None else []}
                    save(policy, ckpt, ema=ema.shadow if ema is not None else None, metadata=metadata,
                         trainer_state=trainer_state)
                if world > 1:
                    torch.distributed.barrier()
            if rank == 0 and progress is not None:
                progress(step, {"loss": loss_value.item(), "lr": scheduler.get_last_lr()[0],
                                "val_loss": val_loss})
        return ckpt
    finally:
        experiment.close()
        if run_lock is not None:
            run_lock.release()
        if owns_group:
            torch.distributed.destroy_process_group()


class _StepBatches(Sampler):
    """Yields this rank's dataset indices for steps start+1 .. config.steps (pure in (seed, step))."""

    def __init__(self, n: int, config: TrainConfig, start: int, rank: int, world: int):
        self.n, self.config, self.start, self.rank, self.world = n, config, start, rank, world
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.config.steps - self.start

    def __iter__(self):
        for step in range(self.start + 1, self.config.steps + 1):
            yield _global_indices(self.n, self.config.batch, self.config.seed, step, self._perms)[
                self.rank * (self.config.batch // self.world):(self.rank + 1) * (self.config.batch // self.world)
            ].tolist()


def _global_indices(n: int, batch: int, seed: int, step: int, cache: dict[int, np.ndarray]) -> np.ndarray:
    """Dataset indices of step ``step``'s global batch: positions (step-1)·B .. step·B-1 of the
    concatenation of per-epoch permutations, epoch e's permutation seeded by (seed, e)."""
    pos = np.arange((step - 1) * batch, step * batch, dtype=np.int64)
    epochs = pos // n
    out = np.empty(batch, dtype=np.int64)
    for e in np.unique(epochs):
        if e not in cache:
            if len(cache) > 4:
                cache.clear()
            cache[int(e)] = np.random.default_rng(np.random.SeedSequence([seed, 0, int(e)])).permutation(n)
        sel = epochs == e
        out[sel] = cache[int(e)][pos[sel] % n]
    return out


def _split_seed(config: TrainConfig) -> int:
    return config.seed if config.split_seed is None else config.split_seed


def _step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    """A CPU torch generator determined by (seed, step, stream) alone."""
    state = np.random.SeedSequence([seed, stream, step]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _lr_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup then cosine decay to ``min_lr_ratio``, as ``torch.optim.lr_scheduler.LambdaLR`` of the
    closed form (``_lr_lambda``); its state is saved in checkpoints and restored on resume.

    Kept as LambdaLR rather than SequentialLR(LinearLR, CosineAnnealingLR), measured
    (docs/results/2026-11-30/logging/): CosineAnnealingLR updates the lr recursively, drifting up to
    8.8e-13 relative from the closed form over 10k steps (not the same numbers); its ``eta_min`` is one
    absolute lr for every parameter group, so ``min_lr_ratio > 0`` would be wrong for groups with another
    base lr; and checkpoints of earlier runs hold LambdaLR state, which SequentialLR cannot load.
    """
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config))


def _lr_lambda(config: TrainConfig) -> Callable[[int], float]:
    """Factor of the peak lr after ``i`` optimizer steps: (i+1)/warmup during the warmup, then
    ``floor + (1 - floor) (1 + cos(pi p)) / 2`` with p = (i - warmup) / (steps - warmup) clipped to 1."""
    warm, total, floor = config.warmup_steps, config.steps, config.min_lr_ratio

    def factor(i: int) -> float:  # i = optimizer steps taken so far
        if i < warm:
            return (i + 1) / warm
        progress = min(1.0, (i - warm) / max(1, total - warm))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


@torch.no_grad()
def _validate(policy, val_set, config: TrainConfig, device: torch.device) -> float:
    """Mean loss on a fixed subset of validation windows with fixed noise (seeded by the split seed)."""
    if val_set is None:
        return float("nan")
    policy.eval()
    idx = np.unique(np.linspace(0, len(val_set) - 1, min(config.val_max_samples, len(val_set))).round().astype(int))
    gen = _step_generator(_split_seed(config), 0, 2)
    total, count = 0.0, 0
    for chunk in np.array_split(idx, max(1, math.ceil(len(idx) / config.batch))):
        batch = _to_device(default_collate([val_set[int(i)] for i in chunk]), device)
        noise = {k: v.to(device) for k, v in policy.draw_loss_noise(len(chunk), gen, "cpu").items()}
        loss, _ = policy.compute_loss(batch, noise=noise)
        total += loss.item() * len(chunk)
        count += len(chunk)
    return total / count


def _init_distributed(device: str) -> tuple[int, int, torch.device, bool]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world <= 1:
        return 0, 1, dev, False
    owns = not torch.distributed.is_initialized()
    if owns:
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    return torch.distributed.get_rank(), torch.distributed.get_world_size(), dev, owns


def _to_device(batch, device: torch.device):
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _checkpoints(root: Path) -> list[Path]:
    """Checkpoint directories under ``root``, newest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _CKPT_RE.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found, reverse=True)]


def _load_resume_state(ckpt: Path, policy, optimizer, scheduler, ema) -> tuple[dict, int]:
    """Load weights, optimizer, scheduler and EMA from ``ckpt``; (accumulators, step). Raises naming
    the file when anything is missing, unreadable, non-finite or does not fit."""
    from ttfkit.policies.checkpoint import read_config, read_trainer_state, read_weights

    read_config(ckpt)
    model_sd, ema_sd = read_weights(ckpt)
    for name, t in {**model_sd, **(ema_sd or {})}.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{ckpt / 'model.safetensors'}: non-finite values in {name!r}")
    state = read_trainer_state(ckpt)
    if state is None:
        raise FileNotFoundError(f"{ckpt / 'trainer_state.json'} is missing (a checkpoint without trainer state "
                                f"cannot be resumed)")
    missing = sorted({"step", "optimizer", "scheduler", "ema_updates", "accumulators"} - set(state))
    if missing:
        raise ValueError(f"{ckpt / 'trainer_state.json'}: missing {missing}")
    if ema is not None and ema_sd is None:
        raise ValueError(f"{ckpt / 'model.safetensors'}: no EMA weights, but the run keeps an EMA")
    policy.load_state_dict(model_sd)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if ema is not None:
        ema.load_state_dict({"shadow": ema_sd, "n_updates": state["ema_updates"]})
    step = int(state["step"])
    if f"step_{step:06d}" != ckpt.name:
        raise ValueError(f"{ckpt / 'trainer_state.json'}: step {step} does not match the folder name")
    return state["accumulators"], step


def _lock_run(run: Path):
    """Exclusive lock on a run directory (created if missing); a second trainer gets a clear error."""
    import filelock

    run.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(run / ".ttfkit.lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise RuntimeError(f"{run}: another process is training into this run directory "
                           f"({(run / '.ttfkit.lock').read_text().strip() or 'pid unknown'})") from None
    (run / ".ttfkit.lock").write_text(f"pid {os.getpid()}")
    return lock


def _remove_stale_temporaries(root: Path) -> None:
    """Delete ``.step_*.tmp-*`` / ``.step_*.old-*`` folders a crashed save left (under the run lock)."""
    if not root.is_dir():
        return
    for p in root.iterdir():
        if re.match(r"^\.step_\d{6,}\.(tmp|old)-", p.name):
            logger.warning("removing %s left by an interrupted checkpoint save", p)
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()


def _check_is_run_folder(run: Path) -> None:
    """A fresh run may use a missing or empty folder, or one holding a ttfkit run; nothing else."""
    if not run.is_dir():
        if run.exists():
            raise FileExistsError(f"{run}: exists and is not a directory")
        return
    names = {p.name for p in run.iterdir()} - {".ttfkit.lock"}
    if names and artefact_kind(run) != _RUN_KIND and "train_config.json" not in names:
        raise FileExistsError(f"{run}: the folder holds files that are not a ttfkit training run "
                              f"({sorted(names)[:5]}); choose a new --out")


def config_diff(path: Path, config: TrainConfig, ignore: tuple[str, ...] = ()) -> dict[str, tuple]:
    """{field: (saved, given)} for the fields where ``path``'s train_config.json differs from ``config``
    (fields added to TrainConfig since the file was written count at their defaults)."""
    saved = TrainConfig.from_dict(json.loads(path.read_text())).to_dict()
    now = config.to_dict()
    return {k: (saved[k], now[k]) for k in now if k not in ignore and saved[k] != now[k]}


def _check_same_config(path: Path, config: TrainConfig) -> None:
    """Raise unless ``path`` holds ``config`` (``out`` aside: a run folder may have been moved; ``log``
    aside: logging changes no result)."""
    if not path.is_file():
        raise FileNotFoundError(f"--resume: {path} is missing")
    try:
        diff = config_diff(path, config, ignore=("out", "log"))
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"--resume: {path}: unreadable saved config ({type(err).__name__}: {err})") from err
    if diff:
        raise ValueError(f"--resume: config differs from {path} (saved, given): {diff}")


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop rows after ``step`` (written after the checkpoint we resume from); fresh file at 0."""
    rows = []
    if path.is_file() and step > 0:
        try:
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
            if any(None in r or None in r.values() for r in rows):
                raise ValueError("a row has a wrong number of fields")
        except (OSError, ValueError, KeyError, TypeError, csv.Error, UnicodeDecodeError) as err:
            aside = path.with_name(f"{path.name}.damaged-{uuid.uuid4().hex[:6]}")
            os.replace(path, aside)
            logger.warning("%s is unreadable (%s: %s); kept as %s, starting a new one", path,
                           type(err).__name__, err, aside.name)
            rows = []
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_METRIC_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _append_metrics(path: Path, row: dict) -> None:
    with path.open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=_METRIC_FIELDS).writerow(
            {k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
