"""Posterior samplers behind one interface for SMC and guidance. Private.

An object with ``posterior_sample(t, x_t, cond, *, generator, noise=None)`` and
``transition(t, t_next, x_t, cond, *, generator)``: GLASS on a (counted) flow model, a (counted) Diamond
Map, or any object that already has both methods (e.g. the exact ``GaussianMixtureFlow``).
"""

from __future__ import annotations

from ttfkit.align import glass
from ttfkit.align.nfe import NFECounter


class _Glass:
    def __init__(self, model, inner_steps: int) -> None:
        self.model, self.inner_steps = model, inner_steps

    def posterior_sample(self, t, x_t, cond=None, *, generator=None, noise=None):
        return glass.posterior_sample(self.model, t, x_t, cond, inner_steps=self.inner_steps,
                                      generator=generator, noise=noise)

    def transition(self, t, t_next, x_t, cond=None, *, generator=None):
        return glass.transition(self.model, t, t_next, x_t, cond, inner_steps=self.inner_steps, generator=generator)


class _Diamond:
    def __init__(self, dmap) -> None:
        self.dmap = dmap

    def posterior_sample(self, t, x_t, cond=None, *, generator=None, noise=None):
        from ttfkit.align.diamond import diamond_posterior_sample

        return diamond_posterior_sample(self.dmap, t, x_t, cond, generator=generator, noise=noise)

    def transition(self, t, t_next, x_t, cond=None, *, generator=None):
        from ttfkit.align.diamond import diamond_transition

        return diamond_transition(self.dmap, t, t_next, x_t, cond, generator=generator)


def resolve(model, posterior, inner_steps: int) -> tuple[object, list[NFECounter]]:
    """(posterior sampler, counters to add to the NFE) for ``posterior`` = "glass" | DiamondMap | object."""
    from ttfkit.align.diamond import DiamondMap

    if isinstance(posterior, str):
        if posterior != "glass":
            raise ValueError(f"posterior must be 'glass', a DiamondMap or a posterior object, got {posterior!r}")
        counter = NFECounter(model)
        return _Glass(counter, inner_steps), [counter]
    if isinstance(posterior, DiamondMap):
        counter = NFECounter(posterior)
        return _Diamond(counter), [counter]
    if hasattr(posterior, "posterior_sample") and hasattr(posterior, "transition"):
        return posterior, []
    raise ValueError(f"unsupported posterior {type(posterior).__name__}: needs posterior_sample and transition")
