"""Diamond Maps: a learned flow map of the GLASS posterior flow (one call = one posterior sample).

Holderrieth et al., "Diamond Maps" (arXiv 2602.05993); methods note, "Diamond Maps".
Convention: x_t = (1-t)·x_0 + t·x_1, t = 0 noise, t = 1 data; inner time s in [0, 1] of the posterior
path x̄_s = s·x_1 + (1-s)·e with x_1 ~ p(x_1 | x_t).

Network: X(s, s'; x̄_s | x_t, t, cond) = x̄_s + (s'-s)·phi. We parametrise phi = (ẑ_θ - x̄_s)/(1-s) with
ẑ_θ = y + (1-t*)·net(...), where (t*, y = t*·S) is the GLASS sufficient input of the two views
(:func:`ttfkit.align.glass.sufficient_input`). On the diagonal s' = s the teacher target is exactly of this
form with net = teacher velocity at (t*, y), so a policy backbone can be reused as ``net`` and starts at
the teacher; x_t enters additionally through a zero-initialised layer, so at initialisation
phi(s, s) equals the teacher's GLASS velocity whenever ``net`` is the teacher's own network.

Distillation (:func:`distillation_loss`, the paper's recipe): x_1 from data, t ~ U[0, t_max],
x_t = (1-t)·e + t·x_1, x̄_s = s·x_1 + (1-s)·e' with the same x_1; a fraction ``diag_fraction`` (75%) of
the batch trains phi(s, s) on the teacher's v̄(s, x̄_s | x_t) (stop-gradient), the rest trains the
Lagrangian self-distillation d/ds' X(s, s') = v̄_teacher(s', sg(X(s, s'))) with a forward-mode jvp in s',
(s, s') uniform on the triangle s < s' in [s_min, s_max]. Options (off by default, documented in
:class:`DiamondConfig`): ``weighting="denoiser"`` scales the squared errors by (1-s)² resp. (1-s')²;
``anchor_fraction`` pins the start of some Lagrangian pairs to s_min; ``trajectory_fraction`` regresses the
jumps from s_min (the ones posterior samples and transitions use) onto the teacher's own few-step GLASS
trajectory (:func:`teacher_trajectory`) instead of bootstrapping them through the Lagrangian term.

Use: posterior sample in one call (x̄ = e ~ N(0, I) taken as x̄_{s_min}, mapped to s_max, divided by
s_max); transition t -> t' in one call (map to the GLASS early-stop time s*, then t'·S). Both inherit
an O(s_min) + O(1-s_max) approximation on top of the distillation error.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ttfkit.align import glass

__all__ = [
    "DiamondConfig",
    "DiamondMap",
    "MLPPhi",
    "distillation_loss",
    "teacher_trajectory",
    "diamond_posterior_sample",
    "diamond_transition",
]


@dataclass(frozen=True)
class DiamondConfig:
    """Diamond Map hyper-parameters.

    Args:
        s_min: smallest inner time trained and used (the start x̄ = e is taken as x̄_{s_min}).
        s_max: largest inner time trained; posterior samples are x̄_{s_max}/s_max.
        t_max: outer times t are drawn from U[0, t_max] during distillation.
        diag_fraction: share of each batch used by the diagonal loss (the rest: Lagrangian).
        weighting: "velocity" (plain phi errors, the paper's loss; default) or "denoiser" (errors scaled
            by (1-s)², i.e. measured on the x_1 estimate; down-weights s near 1).
        anchor_fraction: share of the Lagrangian pairs whose start is pinned to s = s_min (the jump used by
            one-call posterior samples); 0 gives the paper's uniform triangle.
        trajectory_fraction: share of each batch regressed onto the teacher's own GLASS trajectory (the rows
            after the diagonal ones; the Lagrangian gets the rest): x̄_{s_min} = e is integrated with
            ``trajectory_steps`` teacher calls to s' (s_max for half the rows, else U[s_min, s_max]) and
            X(s_min, s'; e) is fitted to it. Trains exactly the jumps that posterior samples and transitions
            use; 0 (default) is the paper's recipe.
        trajectory_steps: Euler steps of the teacher's inner flow per trajectory target (teacher calls).
    """

    s_min: float = 0.01
    s_max: float = 0.99
    t_max: float = 0.995
    diag_fraction: float = 0.75
    weighting: str = "velocity"
    anchor_fraction: float = 0.0
    trajectory_fraction: float = 0.0
    trajectory_steps: int = 8

    def __post_init__(self) -> None:
        if not 0.0 <= self.s_min < self.s_max < 1.0:
            raise ValueError(f"need 0 <= s_min < s_max < 1, got {self.s_min=}, {self.s_max=}")
        if not 0.0 < self.t_max < 1.0:
            raise ValueError(f"t_max must be in (0, 1), got {self.t_max=}")
        if not 0.0 <= self.diag_fraction <= 1.0:
            raise ValueError(f"diag_fraction must be in [0, 1], got {self.diag_fraction=}")
        if not 0.0 <= self.trajectory_fraction <= 1.0 - self.diag_fraction + 1e-9:
            raise ValueError(f"trajectory_fraction must be in [0, 1 - diag_fraction], got {self.trajectory_fraction=}"
                             f" with {self.diag_fraction=}")
        if self.trajectory_steps < 1:
            raise ValueError(f"trajectory_steps must be >= 1, got {self.trajectory_steps=}")
        if not 0.0 <= self.anchor_fraction <= 1.0:
            raise ValueError(f"anchor_fraction must be in [0, 1], got {self.anchor_fraction=}")
        if self.weighting not in ("denoiser", "velocity"):
            raise ValueError(f"weighting must be 'denoiser' or 'velocity', got {self.weighting=}")

    def to_dict(self) -> dict:
        return asdict(self)


class DiamondMap(nn.Module):
    """X(s, s'; x̄_s | x_t, t, cond) = x̄_s + (s'-s)·phi(t, s, s', x_t, x̄_s, cond).

    Args:
        net: module ``net(t, s, s_next, t_star, y, x_t, xbar, cond) -> (N, ...)`` (shape of x̄), the
            velocity-like residual: ẑ_θ = y + (1-t*)·net(...). See :class:`MLPPhi` and
            ``ttfkit.align.policy_phi.PolicyPhi``.
        config: :class:`DiamondConfig`.

    Shapes: t, s, s_next (N,) or floats; x_t, xbar (N, ...); cond None or (N, ...) rows.
    """

    def __init__(self, net: nn.Module, config: DiamondConfig | None = None) -> None:
        super().__init__()
        self.net = net
        self.config = config or DiamondConfig()

    def forward(self, t, s, s_next, x_t: Tensor, xbar: Tensor, cond=None) -> Tensor:
        s_b, sn_b = glass._bcast(s, xbar), glass._bcast(s_next, xbar)
        return xbar + (sn_b - s_b) * self.phi(t, s, s_next, x_t, xbar, cond)

    def phi(self, t, s, s_next, x_t: Tensor, xbar: Tensor, cond=None) -> Tensor:
        """phi = (ẑ_θ - x̄_s)/(1-s), shape of x̄."""
        return (self.denoised(t, s, s_next, x_t, xbar, cond) - xbar) / (1 - glass._bcast(s, xbar))

    def denoised(self, t, s, s_next, x_t: Tensor, xbar: Tensor, cond=None) -> Tensor:
        """ẑ_θ = y + (1-t*)·net(...): the network's estimate of x_1 for the jump s -> s'."""
        t_vec, s_vec, sn_vec = glass._svec(t, xbar), glass._svec(s, xbar), glass._svec(s_next, xbar)
        t_star, y = glass.sufficient_input(t_vec, x_t, s_vec, xbar)
        residual = self.net(t_vec, s_vec, sn_vec, t_star, y, x_t, xbar, cond)
        return y + glass._bcast(1 - t_star, xbar) * residual

    def posterior_sample(self, t, x_t: Tensor, cond=None, *, generator=None, noise=None) -> Tensor:
        """One-call x_1 ~ p(x_1 | x_t); see :func:`diamond_posterior_sample`."""
        return diamond_posterior_sample(self, t, x_t, cond, generator=generator, noise=noise)

    def transition(self, t, t_next, x_t: Tensor, cond=None, *, generator=None) -> Tensor:
        """One-call x_t' ~ p(x_t' | x_t); see :func:`diamond_transition`."""
        return diamond_transition(self, t, t_next, x_t, cond, generator=generator)


class MLPPhi(nn.Module):
    """Generic ``net`` for vectors (N, D) (any (N, ...) is flattened): an MLP on [y, x̄, time features, cond],
    with x_t added to the first hidden layer through a zero-initialised linear layer.

    Args:
        dim: D, flattened sample size.
        hidden: hidden width. depth: number of hidden layers (>= 1).
        cond_dim: size of a flat conditioning vector (0: no cond). time_dim: sinusoidal features per time.
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, cond_dim: int = 0, time_dim: int = 16) -> None:
        super().__init__()
        if dim < 1 or hidden < 1 or depth < 1 or time_dim < 2 or time_dim % 2:
            raise ValueError(f"bad MLPPhi sizes: {dim=}, {hidden=}, {depth=}, {time_dim=} (even, >= 2)")
        self.dim, self.cond_dim, self.time_dim = dim, cond_dim, time_dim
        self.inp = nn.Linear(2 * dim + 4 * time_dim + cond_dim, hidden)
        self.x_t_in = nn.Linear(dim, hidden)
        nn.init.zeros_(self.x_t_in.weight)
        nn.init.zeros_(self.x_t_in.bias)
        layers: list[nn.Module] = []
        for _ in range(depth - 1):
            layers += [nn.SiLU(), nn.Linear(hidden, hidden)]
        self.body = nn.Sequential(*layers, nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, t, s, s_next, t_star, y, x_t, xbar, cond=None) -> Tensor:
        n = y.shape[0]
        times = torch.cat([_sinusoidal(u, self.time_dim) for u in (t, s, s_next, t_star)], dim=1)  # (N, 4F)
        parts = [y.reshape(n, -1), xbar.reshape(n, -1), times]
        if self.cond_dim:
            if cond is None:
                raise ValueError(f"MLPPhi was built with cond_dim={self.cond_dim} but got cond=None")
            parts.append(cond.reshape(n, -1))
        h = self.inp(torch.cat(parts, dim=1)) + self.x_t_in(x_t.reshape(n, -1))
        return self.body(h).reshape(y.shape)


def distillation_loss(dmap: DiamondMap, teacher, x1: Tensor, cond=None, *, generator=None) -> tuple[Tensor, dict]:
    """Diamond-Map distillation loss on a batch of data x1 (N, ...), returns (loss, metrics).

    ``teacher`` is the flow model (``velocity(t, x, cond)``); its calls run without gradient.
    ``cond`` (N, ...) rows or None, passed to both networks. Pure apart from drawing noise.
    """
    cfg = dmap.config
    n = x1.shape[0]
    n_diag = int(round(cfg.diag_fraction * n))
    n_traj = min(int(round(cfg.trajectory_fraction * n)), n - n_diag)
    kw = {"dtype": x1.dtype, "device": x1.device}
    t = torch.rand(n, generator=generator, **kw) * cfg.t_max
    e, e_in = (torch.randn(x1.shape, generator=generator, **kw) for _ in range(2))
    x_t = (1 - glass._bcast(t, x1)) * e + glass._bcast(t, x1) * x1
    u = cfg.s_min + (cfg.s_max - cfg.s_min) * torch.rand(2, n, generator=generator, **kw)
    anchored = torch.rand(n, generator=generator, **kw) < cfg.anchor_fraction
    s_lo = torch.where(anchored, torch.full_like(u[0], cfg.s_min), u.min(0).values)
    s = torch.where(torch.arange(n, device=x1.device) < n_diag, u[0], s_lo)
    s_next = u.max(0).values
    xbar = glass._bcast(s, x1) * x1 + (1 - glass._bcast(s, x1)) * e_in
    metrics: dict[str, float] = {}
    losses = []
    if n_diag > 0:
        sl = slice(0, n_diag)
        c = _rows(cond, sl)
        with torch.no_grad():
            target = glass.posterior_velocity(teacher, t[sl], x_t[sl], s[sl], xbar[sl], c)
        pred = dmap.phi(t[sl], s[sl], s[sl], x_t[sl], xbar[sl], c)
        err = _weighted_sq(pred - target, s[sl], cfg.weighting)
        losses.append(err.sum())
        metrics["loss_diag"] = float(err.detach().mean())
    if n_traj > 0:
        sl = slice(n_diag, n_diag + n_traj)
        c = _rows(cond, sl)
        ts, xs, e0 = t[sl], x_t[sl], e_in[sl]
        u_end = torch.rand(n_traj, generator=generator, **kw)
        s_end = torch.where(u_end < 0.5, torch.full_like(u_end, cfg.s_max), u[1, sl])
        s_start = torch.full_like(s_end, cfg.s_min)
        with torch.no_grad():
            target = teacher_trajectory(teacher, ts, xs, e0, s_start, s_end, c, steps=cfg.trajectory_steps)
        pred = dmap(ts, s_start, s_end, xs, e0, c)
        err = (pred - target).reshape(n_traj, -1).pow(2).mean(1) / (s_end - s_start) ** 2  # mean-velocity error
        losses.append(err.sum())
        metrics["loss_trajectory"] = float(err.detach().mean())
    if n_diag + n_traj < n:
        sl = slice(n_diag + n_traj, n)
        c = _rows(cond, sl)
        ts, ss, xs, xb = t[sl], s[sl], x_t[sl], xbar[sl]
        sn = s_next[sl]
        x_map, dx = torch.func.jvp(lambda sp: dmap(ts, ss, sp, xs, xb, c), (sn,), (torch.ones_like(sn),))
        with torch.no_grad():
            target = glass.posterior_velocity(teacher, ts, xs, sn, x_map.detach(), c)
        err = _weighted_sq(dx - target, sn, cfg.weighting)
        losses.append(err.sum())
        metrics["loss_lagrangian"] = float(err.detach().mean())
    loss = sum(losses) / n
    metrics["loss"] = float(loss.detach())
    return loss, metrics


def teacher_trajectory(teacher, t, x_t: Tensor, xbar: Tensor, s_start, s_end, cond=None, *, steps: int) -> Tensor:
    """x̄_{s_end} of the teacher's GLASS inner flow started at x̄_{s_start} = ``xbar``: ``steps`` Euler steps
    x̄ <- x̄ + (s'-s)/(1-s)·(ẑ - x̄), one teacher call each (as :func:`ttfkit.align.glass.posterior_sample`, but
    from s_start > 0). t, s_start, s_end: floats or (N,); returns the shape of x̄. Pure."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    t_vec, s0, s1 = glass._svec(t, xbar), glass._svec(s_start, xbar), glass._svec(s_end, xbar)
    for i in range(steps):
        s = s0 + (s1 - s0) * (i / steps)
        s_next = s0 + (s1 - s0) * ((i + 1) / steps)
        z_hat = glass.posterior_denoiser(teacher, t_vec, x_t, s, xbar, cond)
        xbar = xbar + glass._bcast((s_next - s) / (1 - s), xbar) * (z_hat - xbar)
    return xbar


def diamond_posterior_sample(dmap, t, x_t: Tensor, cond=None, *, generator=None, noise: Tensor | None = None) -> Tensor:
    """x_1 ~ p(x_1 | x_t) in one call: x̄_{s_min} := e ~ N(0, I), x_1 = X(s_min, s_max; e)/s_max.

    ``dmap`` is a :class:`DiamondMap` or an NFE counter around one. With ``noise`` given the map is
    deterministic and differentiable in x_t (reparameterised samples, as guidance needs).
    """
    cfg = dmap.config
    e = glass._noise(x_t, generator, noise)
    return dmap(t, cfg.s_min, cfg.s_max, x_t, e, cond) / cfg.s_max


def diamond_transition(dmap, t, t_next, x_t: Tensor, cond=None, *, generator=None,
                       noise: Tensor | None = None) -> Tensor:
    """x_t' ~ p(x_t' | x_t) in one call: map e to the GLASS early-stop time s*, then t'·S(x_t, x̄_{s*}).

    Rows with s* <= s_min keep x̄ = e (error O(s*)); rows with s* > s_max rescale x̄_{s_max} by s*/s_max
    (error O(1-s_max)); t' = 1 returns the posterior sample.
    """
    cfg = dmap.config
    t_vec, tn_vec = glass._svec(t, x_t), glass._svec(t_next, x_t)
    if (tn_vec <= t_vec).any() or (tn_vec > 1).any() or (t_vec < 0).any():
        raise ValueError(f"transition needs 0 <= t < t_next <= 1, got t={t}, t_next={t_next}")
    e = glass._noise(x_t, generator, noise)
    s_stop = glass.early_stop_time(t_vec, tn_vec)  # (N,)
    s_map = s_stop.clamp(cfg.s_min, cfg.s_max)
    xbar = dmap(t_vec, torch.full_like(s_map, cfg.s_min), s_map, x_t, e, cond)
    xbar = torch.where(glass._bcast(s_stop <= cfg.s_min, e).bool(), e, xbar)
    xbar = xbar * glass._bcast(torch.where(s_stop > cfg.s_max, s_stop / cfg.s_max, torch.ones_like(s_stop)), e)
    return glass.combine_views(t_vec, x_t, s_stop, xbar, tn_vec)


def _weighted_sq(diff: Tensor, s: Tensor, weighting: str) -> Tensor:
    sq = diff.reshape(diff.shape[0], -1).pow(2).mean(1)  # (n,)
    return sq * (1 - s) ** 2 if weighting == "denoiser" else sq


def _rows(cond, sl: slice):
    if cond is None:
        return None
    if isinstance(cond, dict):
        return {k: v[sl] for k, v in cond.items()}
    return cond[sl]


def _sinusoidal(u: Tensor, dim: int) -> Tensor:
    """Smooth time features (N, dim): sin/cos at angular frequencies from 1 to 16 per unit time (low enough
    that d/ds' of the features, which the Lagrangian loss differentiates, stays O(10))."""
    half = dim // 2
    freqs = torch.logspace(0.0, math.log10(16.0), half, dtype=u.dtype, device=u.device)
    ang = u[:, None] * freqs[None]
    return torch.cat([ang.sin(), ang.cos()], dim=1)
