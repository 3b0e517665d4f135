"""DoPr: double preconditioning, activation-wise (AP) then gradient-wise (GP: AdamW or Muon).

Zhang, Shah, Zhang, Zhang, Matni, Simchowitz, "Double Preconditioning (DoPr): Optimization for
Test-Time Performance, not Validation Loss", arXiv 2606.06418.

For every covered layer (nn.Linear, nn.Conv1d, nn.Conv2d with groups=1) with input rows z (batch x
positions, n rows; conv inputs unfolded into patches in ``weight.view(out, -1)`` layout; a constant 1
appended when the layer has a trainable bias) and weight gradient G = [dW, db] (out x d):

    Sigma = Z^T Z / n                                   (uncentered, float32, from forward hooks)
    tau   = damping * tr(Sigma) / d   ("trace")   or   damping   ("absolute")
    M     = G (Sigma + tau I)^-1                        (Cholesky; cached for ``inverse_every`` steps)

and the base optimizer steps on M as if it were the gradient. Layers the method cannot handle
(embeddings, norms, grouped convs, ...) go to the base optimizer unchanged. ``ActivationPreconditioner``
is the AP half (usable with any optimizer via ``attach``); ``DoPr`` is the drop-in optimizer.
"""

from __future__ import annotations

import collections
import fnmatch
import logging
import math
import weakref
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ttfkit.optim.hybrid import HybridOptimizer
from ttfkit.optim.lowrank import LowRankInverse, lowrank_inverse, nystrom_inverse
from ttfkit.optim.registry import AdamWConfig, MuonConfig, OptimizerConfig, register_optimizer

__all__ = ["ActivationPreconditioner", "DoPr"]

logger = logging.getLogger(__name__)

_DAMPING_MODES = ("trace", "absolute")
_SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d)
_MIN_TAU = 1e-12  # floor on tau so an all-zero Sigma (all-zero inputs, no bias) still factors
_COLD_ITERS, _WARM_ITERS = 6, 2  # subspace iterations of a full-Sigma low-rank refresh: the first, later ones
_GRAM_BLOCK, _GRAM_MAX_BLOCKS = 192, 8  # column panels of the statistics' Z^T Z (see _add_gram)
DEFAULT_RANK = 64  # DoPr's default: cheap AP on layers with more than 128 inputs (see DoPr's docstring)


class DoPr(HybridOptimizer):
    r"""Double preconditioning: activation preconditioning (AP) before AdamW or Muon (GP).

    A drop-in ``torch.optim.Optimizer``: ``param_groups`` are the base optimizer's own group dicts
    (so LR schedulers, gradient clipping and ``zero_grad`` work unchanged), and ``state_dict``
    carries the base state and the preconditioner's (covariances, cached inverses, counters).

    .. math::
       \begin{aligned}
       &\textbf{input}: \text{model}, \gamma \text{ (lr)}, \lambda \text{ (weight decay)}, \delta
           \text{ (damping)}, \beta_\Sigma \text{ (ema)}, k_s \text{ (stat\_every)}, k_i
           \text{ (inverse\_every)} \\
       &\textbf{for } t = 0, 1, \dots \\
       &\quad \text{forward/backward (all micro-batches); if } t \bmod k_s = 0: \text{ hooks add }
           Z_\ell^\top Z_\ell,\ n_\ell \text{ per layer } \ell \text{ (summed over ranks)} \\
       &\quad \textbf{for each covered layer } \ell: \\
       &\qquad \hat\Sigma_\ell \leftarrow \textstyle\sum Z^\top Z / \sum n
           \text{ over the batches since the last refresh (ema=None), or }
           \beta_\Sigma \hat\Sigma_\ell + (1-\beta_\Sigma) Z^\top Z / n \\
       &\qquad \textbf{if } t \bmod k_i = 0: \ \tau_\ell \leftarrow \delta\,\mathrm{tr}(\hat\Sigma_\ell)/d_\ell,
           \ P_\ell \leftarrow (\hat\Sigma_\ell + \tau_\ell I)^{-1} \text{ (Cholesky; } \tau \times 10
           \text{ on failure; if } d_\ell > 2r: \text{ its rank-} r \text{-plus-isotropic form)} \\
       &\qquad G_\ell \leftarrow [\nabla_W, \nabla_b]\, P_\ell \\
       &\quad \theta \leftarrow \text{AdamW or Muon step on } G \text{ with decoupled decay }
           \theta \leftarrow \theta (1 - \gamma\lambda) \text{ (matrices only, not preconditioned)}
       \end{aligned}

    Which parameters: weights and biases of ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d`` (groups=1)
    get AP. With ``base="muon"`` every hidden matrix (conv weights as ``weight.view(out, -1)``) is
    then orthogonalised by Muon (``adjust_lr_fn="match_rms_adamw"``, so ``lr`` means the same as for
    AdamW) and everything else goes to AdamW. ``lr`` and ``weight_decay`` mean exactly what they mean
    for the base optimizer: the base sets the update's magnitude, AP only changes its direction.

    Defaults, from ``scripts/bench_optim.py`` (CPU, 2 shared cores; numbers in the README's DoPr section):

    - ``rank=64`` (cheap AP): layers with d > 128 inputs use P ~ c I + U diag(coef) U^T from the top-64
      Ritz pairs of Sigma (the rest of the spectrum at its mean, :mod:`ttfkit.optim.lowrank`), so G P
      costs 4 out d k instead of 2 out d^2. The first refresh runs subspace iteration on the full Sigma;
      after it the hooks record only the sketch Z~^T (Z~ U) against the current basis U and tr(Sigma)
      (4 n d k instead of 2 n d^2 per recorded batch) and each refresh is a Nystrom step from that
      sketch (one power step per refresh, warm-started; d k^2 instead of a d^3 factorisation). On the
      cosine to exact AP this tracks the earlier warm subspace iteration on the full Sigma within 0.02
      (docs/results/2026-11-30/dopr-cost). On the default MLP at batch 256 the
      FLOP floor of G P falls from 1.71x to 1.17x; it is an approximation: the cheap AP gradient's
      cosine with exact AP's is 0.39-0.56 on the MLP's hidden layers (0.70-0.81 at rank 128, which
      would cost a 1.33x floor), and on the correlated-regression toy it keeps part of exact AP's
      step-count advantage (all of it when rank >= rank(Sigma)). ``rank=None`` is exact AP.

    - ``stat_every=10, inverse_every=50``: per step DoPr adds, per layer (d inputs incl. the bias
      column, ``out`` outputs, n rows = batch x positions), the product G P (2 out d^2 flops, every
      step), the statistics Z^T Z (2 n d^2, every ``stat_every`` steps) and the Cholesky + inverse
      (~d^3, every ``inverse_every`` steps); forward + backward is ~6 n d out. On the default U-Net
      flow policy (n up to 4096, d up to 2561) the statistics alone cost ~2.3x a step and the
      factorisation ~3x, so (1, 1) runs at 5.5x AdamW and (10, 50) at 1.15x (1.29x Muon). On the
      default MLP policy (d = 769 > n = 256) exact AP's G P alone is ~0.7x of forward + backward, a
      floor no refresh schedule removes (at (10, 50), timed directly: exact AP 1.7-1.9x AdamW). Cheap AP
      with the sketch, at load 5-9 on 2 shared cores: MLP 1.20x AdamW, 1.08x Muon; U-Net 1.09x
      AdamW, 1.03x Muon, with G P ~0.15x (MLP) the largest remaining part. On the correlated-regression
      toy (steps to a target error, median of 5 seeds) (10, 50) keeps ~45% of the per-step (1, 1)
      speed-up over AdamW at damping 1e-3 and ~68% at the default 1e-2; (1, 10) keeps ~60-70%.
      ``stat_every=1, inverse_every=1`` is the paper's per-batch covariance exactly.
    - ``ema=None``: Sigma is the mean over the rows recorded since the last refresh (5 batches at
      the defaults); an EMA (0.9) only helped when a single recorded batch fed a refresh (10, 10).
    - ``damping=1e-2, damping_mode="trace"``: tau relative to the mean eigenvalue is scale-free, so
      one value serves layers whose inputs differ in scale by orders of magnitude, and it bounds the
      condition number of Sigma + tau I by ~d / damping (float32-safe). On the toy, per-batch (1, 1)
      was flat over 1e-4 .. 1e-2 (252-258 steps; 291 at 1e-1) while the amortised (10, 50) schedule
      needed more damping for its stale Sigma (513, 472, 375, 343 steps at 1e-4, 1e-3, 1e-2, 1e-1);
      1e-2 keeps ~68% of the (1, 1) speed-up over AdamW (634 steps) at (10, 50).

    Args:
        model: the module whose layers are preconditioned (hooks are registered on it).
        base: "adamw" or "muon".
        lr, weight_decay, betas, eps: as for the base optimizer (AdamW; Muon uses ``lr``,
            ``weight_decay``, ``momentum``).
        momentum: Muon's Nesterov momentum (base="muon" only).
        damping, damping_mode, stat_every, inverse_every, ema, include, exclude, rank: see
            :class:`ActivationPreconditioner` (whose own default is exact AP, ``rank=None``).
    """

    def __init__(
        self,
        model: nn.Module,
        base: str = "adamw",
        lr: float = 1e-4,
        weight_decay: float = 1e-6,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        momentum: float = 0.95,
        damping: float = 1e-2,
        damping_mode: str = "trace",
        stat_every: int = 10,
        inverse_every: int = 50,
        ema: float | None = None,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        rank: int | None = DEFAULT_RANK,
    ):
        if base == "adamw":
            inner = AdamWConfig(lr=lr, weight_decay=weight_decay, betas=betas, eps=eps).build(model)
            parts = [inner]
        elif base == "muon":
            inner = MuonConfig(lr=lr, weight_decay=weight_decay, betas=betas, eps=eps, momentum=momentum).build(model)
            parts = inner.parts
        else:
            raise ValueError(f"DoPr base must be 'adamw' or 'muon', got {base=!r}")
        super().__init__(parts)
        self.base = base
        self.preconditioner = ActivationPreconditioner(
            model, damping=damping, damping_mode=damping_mode, stat_every=stat_every,
            inverse_every=inverse_every, ema=ema, include=include, exclude=exclude, rank=rank,
        )

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.preconditioner.precondition_()
        for part in self.parts:
            part.step()
        return loss

    def state_dict(self) -> dict:
        return {"parts": [part.state_dict() for part in self.parts],
                "preconditioner": self.preconditioner.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        if "preconditioner" not in state_dict:
            raise KeyError(f"DoPr state dict has no 'preconditioner' entry; keys: {sorted(state_dict)}")
        super().load_state_dict(state_dict)
        self.preconditioner.load_state_dict(state_dict["preconditioner"])

    def __repr__(self) -> str:
        return f"DoPr(base={self.base!r}, {self.preconditioner!r})"


class ActivationPreconditioner:
    """Forward hooks that gather each layer's input covariance; ``precondition_`` rewrites ``.grad``.

    Statistics are recorded only in training mode with gradients enabled (``eval()``, ``no_grad``
    and ``inference_mode`` passes do not count), in float32 with autocast off, and are summed over
    every forward pass of a step (micro-batches and, under torch.distributed, ranks: one all-reduce
    of the sums at ``precondition_`` time, which runs after the gradients have synchronised), so
    gradient accumulation and DDP equal one large batch. Its defaults (stat_every = inverse_every
    = 1, ema=None) are the paper's per-batch covariance; ``DoPr`` defaults to an amortised schedule.

    Args:
        model: module to hook. Covered: nn.Linear, nn.Conv1d, nn.Conv2d with groups=1 and a weight
            that requires grad. Grouped convs are left to the base optimizer (logged).
        damping: tau = damping * tr(Sigma) / d ("trace") or tau = damping ("absolute").
        damping_mode: "trace" (relative to the mean eigenvalue) or "absolute".
        stat_every: record statistics on steps t with t % stat_every == 0 (t counts
            ``precondition_`` calls from 0).
        inverse_every: refresh the cached inverse on steps t with t % inverse_every == 0 when new
            statistics arrived since the last refresh (always on the first step with statistics).
        ema: None: Sigma is the mean over all rows recorded since the last refresh (the current
            batch when stat_every = inverse_every = 1). A float beta in [0, 1): Sigma is an
            exponential moving average over recorded steps, beta * Sigma + (1 - beta) * Sigma_batch.
        include: fnmatch patterns over qualified module names (``model.named_modules()``); only
            matching layers are covered. None: all supported layers.
        exclude: fnmatch patterns of layers to leave to the base optimizer.
        rank: None: exact AP, (Sigma + tau I)^-1 by Cholesky. An int k: layers with d > 2k inputs
            (bias included) use the rank-k-plus-isotropic inverse of :mod:`ttfkit.optim.lowrank`
            (top-k Ritz pairs, the rest of the spectrum at its mean), so G P costs 4 out d k instead of
            2 out d^2; smaller layers stay exact. The first refresh uses the full Sigma (subspace
            iteration); with ``ema=None`` later windows record only Sigma's sketch against the last
            basis and refresh by Nystrom (exact when rank(Sigma) <= k, or when the basis spans Sigma's
            top-k eigenvectors and the rest of the spectrum is flat); with an EMA every refresh uses
            the full Sigma, warm-started. Exact for k >= d and for a rank-k Sigma plus a multiple of I.
        max_retries: failed Cholesky factorisations retry with 10x the damping this many times; then
            the layer's raw gradient is used (logged).
        process_group: torch.distributed group for the statistics (default group when initialised).
    """

    def __init__(
        self,
        model: nn.Module,
        damping: float = 1e-2,
        damping_mode: str = "trace",
        stat_every: int = 1,
        inverse_every: int = 1,
        ema: float | None = None,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        rank: int | None = None,
        max_retries: int = 4,
        process_group=None,
    ):
        if not damping >= 0:
            raise ValueError(f"damping must be >= 0, got {damping=}")
        if damping_mode not in _DAMPING_MODES:
            raise ValueError(f"damping_mode must be one of {_DAMPING_MODES}, got {damping_mode=!r}")
        if int(stat_every) != stat_every or stat_every < 1:
            raise ValueError(f"stat_every must be an integer >= 1, got {stat_every=}")
        if int(inverse_every) != inverse_every or inverse_every < 1:
            raise ValueError(f"inverse_every must be an integer >= 1, got {inverse_every=}")
        if ema is not None and not 0.0 <= ema < 1.0:
            raise ValueError(f"ema must be None or in [0, 1), got {ema=}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries=}")
        if rank is not None and (int(rank) != rank or rank < 1):
            raise ValueError(f"rank must be None (exact AP) or an integer >= 1, got {rank=}")
        self.damping = float(damping)
        self.damping_mode = damping_mode
        self.stat_every = int(stat_every)
        self.inverse_every = int(inverse_every)
        self.ema = ema
        self.rank = None if rank is None else int(rank)
        self.max_retries = int(max_retries)
        self.process_group = process_group
        self.layers: dict[str, _Layer] = _find_layers(model, include, exclude)
        self._step = 0
        self._recording = True
        self._handles = [
            layer.module.register_forward_pre_hook(_make_hook(weakref.ref(self), layer))
            for layer in self.layers.values()
        ]
        weakref.finalize(self, _remove_handles, self._handles)  # a dropped preconditioner unhooks itself

    # ---- public -------------------------------------------------------------------------------
    @torch.no_grad()
    def precondition_(self) -> None:
        """Replace ``.grad`` of every covered weight (and bias) by its AP gradient, in place.

        Consumes the statistics recorded since the last call, refreshes inverses that are due, and
        advances the step counter. Layers without an inverse yet, or without a gradient, are left
        unchanged.
        """
        if self._recording:
            self._fold_statistics()
        due = self._step % self.inverse_every == 0
        for name, layer in self.layers.items():
            if layer.empty() or (due and layer.fresh):
                self._refresh(name, layer)
            if layer.inverse is not None:
                _apply(layer)
            elif layer.lowrank is not None:
                _apply_lowrank(layer)
        self._step += 1
        self._recording = self._step % self.stat_every == 0

    def attach(self, optimizer: torch.optim.Optimizer):
        """Make ``optimizer.step()`` call ``precondition_()`` first; returns the hook handle."""
        return optimizer.register_step_pre_hook(lambda opt, args, kwargs: self.precondition_())

    def remove(self) -> None:
        """Remove the forward hooks (statistics are no longer recorded)."""
        _remove_handles(self._handles)

    def state_dict(self) -> dict:
        layers = {name: {k: v.detach().clone() if isinstance(v, torch.Tensor) else v
                         for k, v in layer.stateful().items()} for name, layer in self.layers.items()}
        return {"step": self._step, "recording": self._recording, "layers": layers,
                "config": {"damping": self.damping, "damping_mode": self.damping_mode,
                           "stat_every": self.stat_every, "inverse_every": self.inverse_every, "ema": self.ema,
                           "rank": self.rank}}

    def load_state_dict(self, state_dict: dict) -> None:
        layers = state_dict.get("layers")
        if layers is None or set(layers) != set(self.layers):
            have = None if layers is None else sorted(layers)
            raise KeyError(f"preconditioner state covers layers {have}, this model has {sorted(self.layers)}")
        for name, layer in self.layers.items():
            layer.load(layers[name])
        self._step = int(state_dict["step"])
        self._recording = bool(state_dict["recording"])

    def __repr__(self) -> str:
        return (f"ActivationPreconditioner({len(self.layers)} layers, damping={self.damping}, "
                f"damping_mode={self.damping_mode!r}, stat_every={self.stat_every}, "
                f"inverse_every={self.inverse_every}, ema={self.ema}, rank={self.rank})")

    # ---- internals ----------------------------------------------------------------------------
    def _fold_statistics(self) -> None:
        """All-reduce this step's sums across ranks and fold them into each layer's Sigma."""
        layers = list(self.layers.values())
        if not layers:
            return
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size(self.process_group) > 1:
            flat = torch.cat([layer.sums for layer in layers])
            torch.distributed.all_reduce(flat, group=self.process_group)
            offset = 0
            for layer in layers:
                size = layer.sums.numel()
                layer.sums.copy_(flat[offset:offset + size])
                offset += size
        counts = torch.stack([layer.count for layer in layers]).tolist()  # one device sync
        for layer, n in zip(layers, counts):
            if n == 0:
                continue
            if layer.omega is not None:  # sketch layout (ema=None only): sum since the last refresh
                layer.window = layer.sums.clone() if layer.window is None else layer.window.add_(layer.sums)
                layer.fresh = True
                layer.clear()
                continue
            d = layer.d_in + 1
            if layer.window is None:
                layer.window = torch.zeros(d, d, dtype=torch.float32, device=layer.sums.device)
                scale = 1.0 if self.ema is None else 1.0 / n
            elif self.ema is None:
                scale = 1.0
            else:
                layer.window.mul_(self.ema)
                scale = (1 - self.ema) / n
            layer.fold_into(layer.window, scale)
            layer.fresh = True
            layer.clear()

    def _refresh(self, name: str, layer: "_Layer") -> None:
        if not layer.fresh:
            return
        if layer.omega is not None:
            self._refresh_sketch(name, layer)
            return
        full = _symmetric(layer.window)
        if self.ema is None:
            full.div_(full[-1, -1].clone())
        sigma = full if layer.bias is not None else full[:-1, :-1]
        d = sigma.shape[0]
        layer.fresh = False
        if self.ema is None:
            layer.window = None
        # a non-finite entry of a sum of Z^T Z puts a non-finite value on its diagonal (Cauchy-Schwarz)
        if not torch.isfinite(sigma.diagonal()).all():
            logger.warning("DoPr: non-finite input covariance in layer %r; using its raw gradient", name)
            layer.inverse, layer.lowrank, layer.tau = None, None, None
            return
        tau = self.damping * (sigma.diagonal().sum().item() / d if self.damping_mode == "trace" else 1.0)
        tau = max(tau, _MIN_TAU)
        if self.rank is not None and d > 2 * self.rank:
            self._refresh_lowrank(name, layer, sigma, tau)
            return
        eye = torch.eye(d, dtype=sigma.dtype, device=sigma.device)
        for attempt in range(self.max_retries + 1):
            factor, info = torch.linalg.cholesky_ex(sigma + tau * eye)
            if info.item() == 0:
                # row-major, like a reloaded checkpoint's copy, so resumed runs take the same matmul path
                inverse = torch.cholesky_inverse(factor).contiguous()
                if torch.isfinite(inverse).all():
                    layer.inverse, layer.tau = inverse, tau
                    if attempt:
                        logger.info("DoPr: layer %r factorised after raising tau to %.3g", name, tau)
                    return
            tau *= 10.0
        logger.warning("DoPr: Cholesky of layer %r failed up to tau=%.3g; using its raw gradient", name, tau / 10)
        layer.inverse, layer.tau = None, None

    def _refresh_lowrank(self, name: str, layer: "_Layer", sigma: torch.Tensor, tau: float) -> None:
        """Cheap AP from the full Sigma: the first refresh (and every one with an EMA), subspace iteration
        warm-started from the previous basis; later windows record sketches instead (ema=None)."""
        previous = layer.lowrank
        start = None if previous is None else previous.basis
        generator = torch.Generator().manual_seed(0)  # cold start: fixed, and the global RNG stays untouched
        inverse = lowrank_inverse(sigma, tau, self.rank, start=start, generator=generator,
                                  iters=_COLD_ITERS if previous is None else _WARM_ITERS)
        self._set_lowrank(name, layer, inverse, tau)

    def _refresh_sketch(self, name: str, layer: "_Layer") -> None:
        """Cheap AP from the window's sketch Y = Sigma Omega and tr(Sigma) (Nystrom, :mod:`ttfkit.optim.lowrank`)."""
        window, omega = layer.window, layer.omega
        layer.fresh, layer.window = False, None
        d = omega.shape[0]
        n = window[-1]
        sketch, trace = window[:-2].view_as(omega) / n, (window[-2] / n).item()
        if not (torch.isfinite(sketch).all() and math.isfinite(trace)):
            logger.warning("DoPr: non-finite input sketch in layer %r; using its raw gradient", name)
            layer.lowrank, layer.tau = None, None
            layer.use_sketch(None)
            return
        tau = max(self.damping * (trace / d if self.damping_mode == "trace" else 1.0), _MIN_TAU)
        self._set_lowrank(name, layer, nystrom_inverse(sketch, omega, trace, tau), tau)

    def _set_lowrank(self, name: str, layer: "_Layer", inverse: LowRankInverse, tau: float) -> None:
        if not (torch.isfinite(inverse.basis).all() and torch.isfinite(inverse.coef).all()
                and inverse.scale < float("inf")):
            logger.warning("DoPr: low-rank refresh of layer %r is not finite; using its raw gradient", name)
            layer.lowrank, layer.tau = None, None
            layer.use_sketch(None)
            return
        layer.lowrank, layer.tau = inverse, tau
        # the next windows record Sigma against this basis (an EMA of Sigma needs the full matrix)
        layer.use_sketch(inverse.basis if self.ema is None else None)


class _Layer:
    """One covered module: its parameters, running sums and cached inverse.

    The sums since the last fold live in one flat float32 buffer (one all-reduce under DDP), in one of
    two layouts (d = d_in + 1 with a bias, else d_in):

    - full (exact AP, and cheap AP before its first refresh): the Gram matrix Z^T Z (d_in, d_in), of
      which only the upper block panels are accumulated (:func:`_add_gram`), the column sums Z^T 1
      (d_in,) and the row count n; ``window`` keeps the augmented (d_in + 1)^2 layout
      [[Z^T Z, Z^T 1], [1^T Z, n]], whose lower triangle is not read (:func:`_symmetric`);
    - sketch (cheap AP after its first refresh, ``omega`` set to that refresh's basis): Z~^T (Z~ Omega)
      (d, k) for the rows Z~ (with the constant 1 column when there is a bias), tr(Z~^T Z~) and n;
      ``window`` is their sum since the last refresh, same layout.
    """

    def __init__(self, module: nn.Module):
        self.module = module
        self.weight = module.weight
        self.bias = module.bias if module.bias is not None and module.bias.requires_grad else None
        self.d_in = self.weight[0].numel()
        self.window: torch.Tensor | None = None  # ema=None: summed sums since refresh; else EMA of Sigma
        self.fresh = False  # new statistics since the last refresh
        self.inverse: torch.Tensor | None = None  # (Sigma + tau I)^-1, (d, d): exact AP
        self.lowrank: LowRankInverse | None = None  # its rank-k-plus-isotropic form: cheap AP
        self.tau: float | None = None
        self.use_sketch(None)

    def use_sketch(self, omega: torch.Tensor | None) -> None:
        """Switch the sums to the sketch layout against ``omega`` (d, k), or back to full (None); zeroes them."""
        d_in, device = self.d_in, self.weight.device
        self.omega = omega
        if omega is None:
            self.sums = torch.zeros(d_in * d_in + d_in + 1, dtype=torch.float32, device=device)
            self.gram = self.sums[:d_in * d_in].view(d_in, d_in)  # upper block panels of Z^T Z
            self.colsum = self.sums[d_in * d_in:-1]  # Z^T 1 (bias layers only)
        else:
            d, k = omega.shape
            self.sums = torch.zeros(d * k + 2, dtype=torch.float32, device=device)
            self.sketch = self.sums[:d * k].view(d, k)  # Z~^T Z~ Omega
            self.trace = self.sums[-2]  # tr(Z~^T Z~)
        self.count = self.sums[-1]  # n

    @property
    def acc(self) -> torch.Tensor:
        """The full-layout sums since the last fold as one symmetric (d_in + 1)^2 matrix (a copy; n at [-1, -1])."""
        if self.omega is not None:
            raise ValueError("the layer records a sketch of Sigma, not Z^T Z")
        out = torch.zeros(self.d_in + 1, self.d_in + 1, dtype=torch.float32, device=self.sums.device)
        self.fold_into(out, 1.0)
        return _symmetric(out)

    def fold_into(self, window: torch.Tensor, scale: float) -> None:
        """Full layout: window (d_in + 1)^2 += scale * the augmented sums (upper triangle, bias row/column)."""
        window[:-1, :-1].add_(self.gram, alpha=scale)
        window[-1, :-1].add_(self.colsum, alpha=scale)
        window[:-1, -1].add_(self.colsum, alpha=scale)
        window[-1, -1].add_(self.count, alpha=scale)

    def clear(self) -> None:
        self.sums.zero_()

    def empty(self) -> bool:
        return self.inverse is None and self.lowrank is None

    def stateful(self) -> dict:
        return {"acc": self.acc if self.omega is None else self.sums, "omega": self.omega, "window": self.window,
                "fresh": self.fresh, "inverse": self.inverse,
                "lowrank": None if self.lowrank is None else self.lowrank.state(), "tau": self.tau}

    def load(self, state: dict) -> None:
        device = self.weight.device
        omega = state.get("omega")  # absent in states saved before the sketch layout existed
        self.use_sketch(None if omega is None else omega.to(device=device, dtype=torch.float32).clone())
        acc = state["acc"].to(device=device, dtype=torch.float32)
        if omega is not None:
            if acc.shape != self.sums.shape:
                raise ValueError(f"preconditioner state has sketch sums of shape {tuple(acc.shape)}, "
                                 f"its omega {tuple(omega.shape)} needs {tuple(self.sums.shape)}")
            self.sums.copy_(acc)
        else:
            d = self.d_in + 1
            if tuple(acc.shape) != (d, d):
                raise ValueError(f"preconditioner state has sums of shape {tuple(acc.shape)}, layer needs {(d, d)}")
            self.gram.copy_(acc[:-1, :-1])
            self.colsum.copy_(acc[-1, :-1])
            self.count.copy_(acc[-1, -1])
        self.window = None if state["window"] is None else state["window"].to(device).clone()
        self.fresh = bool(state["fresh"])
        self.inverse = None if state["inverse"] is None else state["inverse"].to(device).clone()
        lowrank = state.get("lowrank")  # absent in states saved before the low-rank form existed
        self.lowrank = None if lowrank is None else LowRankInverse.from_state(lowrank, device)
        self.tau = state["tau"]


def _make_hook(owner: "weakref.ref[ActivationPreconditioner]", layer: _Layer):
    def hook(module: nn.Module, args: tuple) -> None:
        preconditioner = owner()
        if preconditioner is None or not (preconditioner._recording and module.training and torch.is_grad_enabled()):
            return
        _accumulate(layer, args[0])

    return hook


def _remove_handles(handles: list) -> None:
    for handle in handles:
        handle.remove()
    handles.clear()


def _find_layers(model: nn.Module, include, exclude) -> dict[str, _Layer]:
    include = None if include is None else list(include)
    exclude = [] if exclude is None else list(exclude)
    layers, matched = {}, set()
    owners = collections.Counter(id(m.weight) for m in model.modules() if isinstance(m, _SUPPORTED))
    for name, module in model.named_modules():
        if not isinstance(module, _SUPPORTED):
            continue
        if include is not None:
            hits = [p for p in include if fnmatch.fnmatchcase(name, p)]
            if not hits:
                continue
            matched.update(hits)
        if any(fnmatch.fnmatchcase(name, p) for p in exclude):
            continue
        if not module.weight.requires_grad:
            continue
        if isinstance(module, (nn.Conv1d, nn.Conv2d)) and module.groups != 1:
            logger.warning("DoPr: %r is a grouped conv (groups=%d); it gets the base optimizer only",
                           name, module.groups)
            continue
        if owners[id(module.weight)] > 1:
            logger.warning("DoPr: %r shares its weight with another layer; it gets the base optimizer only", name)
            continue
        layers[name] = _Layer(module)
    if include is not None and set(include) - matched:
        raise ValueError(f"include patterns {sorted(set(include) - matched)} match no Linear/Conv1d/Conv2d "
                         f"module of the model")
    return layers


def _rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Input rows Z (n, d_in) in the layout of ``weight.view(out, -1)``."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    is_1d = isinstance(module, nn.Conv1d)
    if module.padding_mode != "zeros":
        x = F.pad(x, module._reversed_padding_repeated_twice, mode=module.padding_mode)
    elif any(module._reversed_padding_repeated_twice):
        x = F.pad(x, module._reversed_padding_repeated_twice)
    if is_1d:
        x = x.unsqueeze(-2)  # (B, C, 1, L): Conv1d as a Conv2d of height 1
        kernel, dilation, stride = (1, *module.kernel_size), (1, *module.dilation), (1, *module.stride)
    else:
        kernel, dilation, stride = module.kernel_size, module.dilation, module.stride
    if x.dim() == 3:  # unbatched Conv2d input (C, H, W)
        x = x.unsqueeze(0)
    patches = F.unfold(x, kernel, dilation=dilation, stride=stride)  # (B, C*k, L)
    return patches.transpose(1, 2).reshape(-1, patches.shape[1])


def _accumulate(layer: _Layer, x: torch.Tensor) -> None:
    """Add this input's Z^T Z (upper block panels), Z^T 1 and n to the layer's sums (float32, autocast off)."""
    with torch.autocast(device_type=x.device.type, enabled=False), torch.no_grad():
        if isinstance(layer.module, nn.Conv1d) and x.dim() == 2:
            x = x.unsqueeze(0)  # unbatched (C, L)
        z = _rows(layer.module, x.detach()).float()  # (n, d_in)
        layer.count.add_(z.shape[0])
        if layer.omega is not None:
            _add_sketch(layer, z)
            return
        _add_gram(layer.gram, z)
        if layer.bias is not None:
            layer.colsum.add_(z.sum(0))


def _add_sketch(layer: _Layer, z: torch.Tensor) -> None:
    """sketch += Z~^T (Z~ Omega), trace += tr(Z~^T Z~) for the rows Z~ = [z, 1] (bias) or z: 4 n d k flops."""
    omega, d_in = layer.omega, layer.d_in
    if layer.bias is None:
        projected = z @ omega  # (n, k)
        layer.sketch.addmm_(z.T, projected)
        layer.trace.add_(torch.linalg.vector_norm(z).square())
        return
    projected = torch.addmm(omega[d_in], z, omega[:d_in])  # (n, k) = [z, 1] Omega
    layer.sketch[:d_in].addmm_(z.T, projected)
    layer.sketch[d_in].add_(projected.sum(0))
    layer.trace.add_(torch.linalg.vector_norm(z).square() + z.shape[0])


def _add_gram(gram: torch.Tensor, z: torch.Tensor) -> None:
    """gram (d, d) += the upper block panels of z^T z, z (n, d): for column blocks i <= j, block (i, j).

    Z^T Z is symmetric, so its blocks below the diagonal are not computed: with b blocks of about
    ``_GRAM_BLOCK`` columns this costs (b + 1) / (2 b) of the full product. :func:`_symmetric` restores
    the lower triangle when Sigma is needed (at refresh time).
    """
    d = z.shape[1]
    blocks = min(_GRAM_MAX_BLOCKS, max(1, d // _GRAM_BLOCK))
    if blocks == 1:
        gram.addmm_(z.T, z)
        return
    edges = [min(d, round(i * d / blocks / 16) * 16) for i in range(blocks)] + [d]
    for start, stop in zip(edges[:-1], edges[1:]):
        gram[start:stop, start:].addmm_(z[:, start:stop].T, z[:, start:])


def _symmetric(upper: torch.Tensor) -> torch.Tensor:
    """The symmetric matrix whose upper triangle (diagonal included) is ``upper``'s. Pure."""
    out = upper.triu()
    return out.add_(out.triu(1).T)


def _apply(layer: _Layer) -> None:
    """Replace [dW, db] by [dW, db] (Sigma + tau I)^-1 in place (the inverse is finite by construction).

    With a bias the product is split into blocks of P = [[P_ww, p_wb], [p_wb^T, p_bb]], so no
    concatenated copy of the gradient is made: dW' = dW P_ww + db p_wb^T, db' = dW p_wb + db p_bb.
    """
    weight, bias = layer.weight, layer.bias
    if weight.grad is None:
        return
    inverse = layer.inverse
    gw = weight.grad.reshape(weight.shape[0], -1).float()  # (out, d_in)
    if bias is None:
        weight.grad.copy_((gw @ inverse).view(weight.shape))
        return
    gb = bias.grad.float() if bias.grad is not None else torch.zeros(weight.shape[0], device=gw.device)  # (out,)
    mw = torch.addr(gw @ inverse[:-1, :-1], gb, inverse[-1, :-1])
    mb = torch.addmv(gb * inverse[-1, -1], gw, inverse[:-1, -1])
    _write(layer, mw, mb)


def _apply_lowrank(layer: _Layer) -> None:
    """[dW, db] P with P = c I + U diag(coef) U^T (see :mod:`ttfkit.optim.lowrank`), in place, split
    into the weight rows U_w and the bias row u_b of U as in :func:`_apply`:

        K = (dW U_w + db u_b^T) diag(coef)   (out, k)
        dW' = c dW + K U_w^T,  db' = c db + K u_b

    Two matmuls of 2 out d_in k flops each; a float32 contiguous gradient is updated in place
    (``addmm_``), with no (out, d_in) temporary.
    """
    weight, bias, inverse = layer.weight, layer.bias, layer.lowrank
    grad = weight.grad
    if grad is None:
        return
    basis, coef, scale = inverse.basis, inverse.coef, inverse.scale
    in_place = grad.dtype == torch.float32 and grad.is_contiguous()
    gw = grad.view(weight.shape[0], -1) if in_place else grad.reshape(weight.shape[0], -1).float()  # (out, d_in)
    if bias is None:
        projected = (gw @ basis).mul_(coef)  # (out, k)
        gw.addmm_(projected, basis.T, beta=scale)
    else:
        basis_w, basis_b = basis[:-1], basis[-1]
        gb = bias.grad
        projected = gw @ basis_w  # (out, k)
        if gb is not None:
            gb32 = gb.float()
            projected.addr_(gb32, basis_b)
        projected.mul_(coef)
        gw.addmm_(projected, basis_w.T, beta=scale)
        mb = projected @ basis_b if gb is None else torch.addmv(gb32, projected, basis_b, beta=scale)  # (out,)
        if gb is None:
            bias.grad = mb.to(bias.dtype)
        else:
            gb.copy_(mb)
    if not in_place:
        grad.copy_(gw.view(weight.shape))


def _write(layer: _Layer, mw: torch.Tensor, mb: torch.Tensor) -> None:
    weight, bias = layer.weight, layer.bias
    weight.grad.copy_(mw.view(weight.shape))
    if bias.grad is None:
        bias.grad = mb.to(bias.dtype)
    else:
        bias.grad.copy_(mb)


# ---- registry entries ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _DoPrConfig(OptimizerConfig):
    """DoPr hyperparameters on top of the base optimizer's (see :class:`DoPr`).

    Args:
        damping: tau = damping * tr(Sigma)/d (trace mode) or damping (absolute mode).
        damping_mode: "trace" or "absolute".
        stat_every: record input statistics every this many steps.
        inverse_every: refresh the cached (Sigma + tau I)^-1 every this many steps.
        ema: None (mean over the rows since the last refresh) or the EMA coefficient of Sigma.
        rank: cheap AP's rank for layers with more than 2 * rank inputs; None: exact AP everywhere
            (``--optim-option rank=null`` on the command line).
        momentum: Muon's Nesterov momentum (dopr-muon only).
    """

    damping: float = 1e-2
    damping_mode: str = "trace"
    stat_every: int = 10
    inverse_every: int = 50
    ema: float | None = None
    rank: int | None = DEFAULT_RANK
    momentum: float = 0.95
    _base = "adamw"

    def __post_init__(self):
        super().__post_init__()
        if not self.damping >= 0:
            raise ValueError(f"damping must be >= 0, got {self.damping=}")
        if self.damping_mode not in _DAMPING_MODES:
            raise ValueError(f"damping_mode must be one of {_DAMPING_MODES}, got {self.damping_mode=!r}")
        if self.stat_every < 1 or self.inverse_every < 1:
            raise ValueError(f"stat_every and inverse_every must be >= 1, got {self.stat_every=}, {self.inverse_every=}")
        if self.ema is not None and not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be None or in [0, 1), got {self.ema=}")
        if self.rank is not None and (int(self.rank) != self.rank or self.rank < 1):
            raise ValueError(f"rank must be None (exact AP) or an integer >= 1, got {self.rank=}")

    def build(self, model: nn.Module) -> DoPr:
        return DoPr(model, base=self._base, lr=self.lr, weight_decay=self.weight_decay, betas=self.betas,
                    eps=self.eps, momentum=self.momentum, damping=self.damping, damping_mode=self.damping_mode,
                    stat_every=self.stat_every, inverse_every=self.inverse_every, ema=self.ema, rank=self.rank)


@register_optimizer("dopr-adamw")
@dataclass(frozen=True)
class DoPrAdamWConfig(_DoPrConfig):
    """DoPr with AdamW as the gradient preconditioner (weight decay on matrices only)."""

    _base = "adamw"


@register_optimizer("dopr-muon")
@dataclass(frozen=True)
class DoPrMuonConfig(_DoPrConfig):
    """DoPr with Muon on hidden matrices (conv weights flattened) and AdamW on the rest."""

    _base = "muon"
