"""Held-out check of a policy Diamond Map: how far its one-call posterior is from the teacher's GLASS posterior.

For M held-out (observation, action chunk) pairs and each outer time t, one x_t = (1-t)·e + t·x_1 is drawn
(x_1 the demonstrated chunk, normalised); the reference is n samples of the teacher's GLASS posterior
p(x_1 | x_t, obs) with ``ref_steps`` inner steps. A sampler's distance is the energy distance
(:func:`ttfkit.align.testing.energy_distance`) of its n samples to the reference, averaged over the M pairs.
Baselines computed once: GLASS with few inner steps (the same number of network calls or twice as many) and
the noise floor (a second, independent reference set). t = 0 is the policy's own action distribution.

Shapes: cond (M, Dc), x_1 (M, H, Da) in the policy's normalised action space.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ttfkit.align import glass
from ttfkit.align.diamond import diamond_posterior_sample
from ttfkit.align.testing import energy_distance

__all__ = ["PosteriorCheck", "build_check"]


@dataclass
class PosteriorCheck:
    """Fixed held-out inputs and references; :meth:`distances` scores a Diamond Map against them.

    Attributes:
        ts: outer times. n: samples per (pair, t). cond: (M, Dc). x_t: {t: (M, H, Da)}.
        ref: {t: (M·n, H, Da)} reference samples (row m·n + j belongs to pair m).
        baselines: {"glass<k>": {t: distance}} and {"floor": {t: distance}}.
    """

    ts: tuple[float, ...]
    n: int
    cond: Tensor
    x_t: dict[float, Tensor]
    ref: dict[float, Tensor]
    baselines: dict[str, dict[float, float]] = field(default_factory=dict)

    def distances(self, sample_fn, generator: torch.Generator | None = None) -> dict[float, float]:
        """{t: mean energy distance to the reference} for ``sample_fn(t, x_t (M·n, ...), cond (M·n, Dc))``."""
        out = {}
        cond = self.cond.repeat_interleave(self.n, 0)
        for t in self.ts:
            x_t = self.x_t[t].repeat_interleave(self.n, 0)
            with torch.no_grad():
                z = sample_fn(t, x_t, cond)
            out[t] = self._score(t, z)
        return out

    def diamond_distances(self, dmap, generator: torch.Generator | None = None) -> dict[float, float]:
        """:meth:`distances` of the one-call posterior ``diamond_posterior_sample(dmap, ...)``."""
        return self.distances(lambda t, x_t, c: diamond_posterior_sample(dmap, t, x_t, c, generator=generator))

    def _score(self, t: float, z: Tensor) -> float:
        m = self.cond.shape[0]
        zs, refs = z.reshape(m, self.n, -1), self.ref[t].reshape(m, self.n, -1)
        return sum(energy_distance(zs[i], refs[i]) for i in range(m)) / m


def build_check(policy, cond: Tensor, x1: Tensor, *, ts=(0.0, 0.3, 0.6, 0.9), n: int = 128, ref_steps: int = 32,
                glass_steps=(1, 2), seed: int = 0) -> PosteriorCheck:
    """References and baselines for held-out pairs (cond (M, Dc), x1 (M, H, Da)) of the flow ``policy``.

    Costs (2·ref_steps + sum(glass_steps))·len(ts) teacher calls on M·n rows.
    """
    if cond.shape[0] != x1.shape[0]:
        raise ValueError(f"cond {tuple(cond.shape)} and x1 {tuple(x1.shape)} disagree on the number of pairs")
    if any(not 0.0 <= t < 1.0 for t in ts):
        raise ValueError(f"outer times must lie in [0, 1), got {ts}")
    g = torch.Generator(device=x1.device).manual_seed(seed)
    rows = cond.repeat_interleave(n, 0)
    x_ts, refs, second = {}, {}, {}
    with torch.no_grad():
        for t in ts:
            e = torch.randn(x1.shape, generator=g, dtype=x1.dtype, device=x1.device)
            x_ts[t] = (1 - t) * e + t * x1
            xr = x_ts[t].repeat_interleave(n, 0)
            refs[t] = glass.posterior_sample(policy, t, xr, rows, inner_steps=ref_steps, generator=g)
            second[t] = glass.posterior_sample(policy, t, xr, rows, inner_steps=ref_steps, generator=g)
    check = PosteriorCheck(tuple(ts), n, cond, x_ts, refs)
    check.baselines["floor"] = {t: check._score(t, second[t]) for t in ts}
    for k in glass_steps:
        check.baselines[f"glass{k}"] = check.distances(
            lambda t, x_t, c, k=k: glass.posterior_sample(policy, t, x_t, c, inner_steps=k, generator=g))
    return check
