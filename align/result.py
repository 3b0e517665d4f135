"""AlignResult: what every alignment algorithm returns (samples plus cost and diversity diagnostics)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["AlignResult"]


@dataclass
class AlignResult:
    """Output of :func:`best_of_n`, :func:`smc` and :func:`guided_sample`.

    Attributes:
        samples: (N, ...) final samples x_1 (equally weighted).
        nfe: network evaluations spent in total, counted per row (see :class:`NFECounter`).
        rewards: (N,) reward of each sample (zeros where no reward was evaluated).
        ess: effective sample size after each reweighting step (SMC only; empty otherwise).
        n_distinct: number of distinct rows in ``samples``.
        resampled: SMC step indices at which resampling happened.
        log_weights: (N,) final normalised log-weights before the last resampling (SMC only).
    """

    samples: Tensor
    nfe: int
    rewards: Tensor
    ess: list[float] = field(default_factory=list)
    n_distinct: int = 0
    resampled: list[int] = field(default_factory=list)
    log_weights: Tensor | None = None

    @property
    def nfe_per_sample(self) -> float:
        """Network evaluations per returned sample."""
        return self.nfe / max(self.samples.shape[0], 1)


def count_distinct(samples: Tensor) -> int:
    """Number of distinct rows of (N, ...) samples."""
    return int(torch.unique(samples.reshape(samples.shape[0], -1), dim=0).shape[0])
