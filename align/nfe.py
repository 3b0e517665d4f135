"""NFE counter: wraps a flow model (``velocity``) or a network (``__call__``) and counts its evaluations.

Every alignment algorithm wraps the models it receives so that methods are compared at equal cost.
Two numbers are kept: ``calls`` (batched forward passes) and ``evals`` (rows evaluated, the sum of the
batch sizes, i.e. network evaluations per single sample added up). Alignment results report ``evals``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

__all__ = ["NFECounter"]


class NFECounter:
    """Proxy that counts calls of ``velocity(t, x, cond)`` and of ``__call__`` on the wrapped object.

    The batch size is the leading dim of the first positional tensor argument that has one (``t`` may be
    a float, e.g. a Diamond Map's ``(t, s, s', x_t, x̄, cond)`` with scalar times). All other attributes
    are forwarded to the wrapped object. Mutates only its own counters.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls = 0
        self.evals = 0

    def velocity(self, t: Tensor, x: Tensor, cond=None) -> Tensor:
        self._count(t, x)
        return self.model.velocity(t, x, cond)

    def __call__(self, *args, **kwargs):
        self._count(*args)
        return self.model(*args, **kwargs)

    def reset(self) -> None:
        """Set both counters to zero."""
        self.calls = 0
        self.evals = 0

    def __getattr__(self, name: str):
        # Only called for attributes not found on the proxy itself.
        return getattr(self.__dict__["model"], name)

    def _count(self, *args) -> None:
        self.calls += 1
        rows = next((a.shape[0] for a in args if isinstance(a, Tensor) and a.ndim > 0), 1)
        self.evals += rows
