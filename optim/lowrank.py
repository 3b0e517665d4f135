"""Low-rank-plus-isotropic inverse of a damped covariance: the cheap form of DoPr's AP.

For a symmetric PSD Sigma (d x d), damping tau and rank k < d:

    Sigma ~ U diag(lam) U^T + rho (I - U U^T),   U (d, k) orthonormal Ritz vectors of Sigma's top-k
                                                 subspace, lam their Ritz values,
                                                 rho = (tr(Sigma) - sum(lam)) / (d - k) (the mean of
                                                 the remaining eigenvalues, so the trace is kept)
    P = (Sigma + tau I)^-1 ~ c I + U diag(coef) U^T,   c = 1 / (rho + tau),  coef = 1 / (lam + tau) - c

so G P = c G + (G U) diag(coef) U^T costs 4 d_out d k flops instead of 2 d_out d^2. It is exact when
k = d, and when Sigma is a rank-<=k matrix plus a multiple of the identity (then the complement's
eigenvalues all equal rho). The top-k subspace comes from subspace iteration (block power method with
QR, then Rayleigh-Ritz), warm-started from the previous refresh's basis: 2 d^2 k flops per iteration,
against ~d^3 for a Cholesky factor and inverse. All functions are pure.
"""

from __future__ import annotations

import torch

__all__ = ["LowRankInverse", "lowrank_inverse", "top_eigenpairs", "apply_lowrank"]


class LowRankInverse:
    """P ~ scale * I + basis diag(coef) basis^T. basis (d, k), coef (k,), scale: float."""

    __slots__ = ("basis", "coef", "scale")

    def __init__(self, basis: torch.Tensor, coef: torch.Tensor, scale: float):
        self.basis, self.coef, self.scale = basis, coef, float(scale)

    def dense(self) -> torch.Tensor:
        """The (d, d) matrix (for tests and diagnostics)."""
        eye = torch.eye(self.basis.shape[0], dtype=self.basis.dtype, device=self.basis.device)
        return self.scale * eye + (self.basis * self.coef) @ self.basis.T

    def state(self) -> dict:
        return {"basis": self.basis, "coef": self.coef, "scale": self.scale}

    @classmethod
    def from_state(cls, state: dict, device) -> "LowRankInverse":
        return cls(state["basis"].to(device).clone(), state["coef"].to(device).clone(), state["scale"])


def top_eigenpairs(sigma: torch.Tensor, k: int, start: torch.Tensor | None = None, iters: int = 2,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Ritz pairs of Sigma's dominant k-dimensional subspace, by ``iters`` steps of subspace iteration.

    Args:
        sigma: (d, d) symmetric.
        k: subspace dimension, 1 <= k <= d (k = d: a full eigendecomposition).
        start: (d, k) starting block (e.g. the previous basis); None: Gaussian from ``generator``.
        iters: multiplications by Sigma (each followed by a QR).
    Returns:
        lam (k,) descending Ritz values and U (d, k) orthonormal Ritz vectors, Sigma's dtype.
    """
    d = sigma.shape[0]
    if not 1 <= k <= d:
        raise ValueError(f"rank k must lie in [1, d={d}], got {k=}")
    if k == d:
        lam, vec = torch.linalg.eigh(sigma)
        return lam.flip(0), vec.flip(1)
    if start is None or tuple(start.shape) != (d, k):
        start = torch.randn(d, k, generator=generator, dtype=sigma.dtype).to(sigma.device)
    q, _ = torch.linalg.qr(start)
    for _ in range(iters):
        q, _ = torch.linalg.qr(sigma @ q)
    small = q.T @ sigma @ q  # (k, k) Rayleigh-Ritz
    lam, vec = torch.linalg.eigh((small + small.T) / 2)
    return lam.flip(0), q @ vec.flip(1)


def lowrank_inverse(sigma: torch.Tensor, tau: float, k: int, start: torch.Tensor | None = None, iters: int = 2,
                    generator: torch.Generator | None = None) -> LowRankInverse:
    """The rank-k-plus-isotropic approximation of (Sigma + tau I)^-1 (see the module docstring)."""
    d = sigma.shape[0]
    lam, basis = top_eigenpairs(sigma, k, start=start, iters=iters, generator=generator)
    lam = lam.clamp_min(0.0)
    rest = 0.0 if k == d else max((sigma.diagonal().sum() - lam.sum()).item() / (d - k), 0.0)
    scale = 1.0 / (rest + tau)
    return LowRankInverse(basis.contiguous(), 1.0 / (lam + tau) - scale, scale)


def apply_lowrank(grad: torch.Tensor, inverse: LowRankInverse) -> torch.Tensor:
    """grad (out, d) @ P for P = scale I + U diag(coef) U^T, without forming P. Pure."""
    projected = (grad @ inverse.basis) * inverse.coef  # (out, k)
    return torch.addmm(grad, projected, inverse.basis.T, beta=inverse.scale)
