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
against ~d^3 for a Cholesky factor and inverse.

Sigma itself need not be formed: :func:`nystrom_inverse` builds the same form from a sketch
Y = Sigma Omega against an orthonormal (d, k) block Omega (DoPr uses the previous refresh's basis, so
the statistics cost 4 n d k instead of 2 n d^2 per batch of n rows) and tr(Sigma), through the Nystrom
approximation Sigma ~ Y (Omega^T Y)^+ Y^T (Halko, Martinsson, Tropp 2011, sec. 5.4; Tropp, Yurtsever,
Udell, Cevher 2017): one power step per refresh, exact when range(Sigma) lies in span(Omega) or
span(Omega) is an invariant subspace holding Sigma's top k eigenvalues. All functions are pure.
"""

from __future__ import annotations

import torch

__all__ = ["LowRankInverse", "lowrank_inverse", "nystrom_inverse", "top_eigenpairs", "apply_lowrank"]


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


def nystrom_inverse(sketch: torch.Tensor, omega: torch.Tensor, trace: float, tau: float,
                    rcond: float = 1e-6) -> LowRankInverse:
    """The rank-k-plus-isotropic approximation of (Sigma + tau I)^-1 from a sketch of Sigma.

    Args:
        sketch: Y = Sigma Omega, (d, k).
        omega: (d, k) with orthonormal columns, k < d.
        trace: tr(Sigma) (the complement's eigenvalues are set to their mean, as in :func:`lowrank_inverse`).
        tau: damping > 0.
        rcond: eigenvalues of Omega^T Y below rcond * its largest are treated as 0 (Sigma's rank inside
            span(Omega) is then smaller than k; the basis is completed from Omega with eigenvalue 0).
    Returns:
        LowRankInverse with a (d, k) orthonormal basis in ``sketch``'s dtype; computed in float64.
    """
    d, k = sketch.shape
    if tuple(omega.shape) != (d, k) or not 1 <= k < d:
        raise ValueError(f"sketch {tuple(sketch.shape)} and omega {tuple(omega.shape)} must both be (d, k), k < d")
    y, om = sketch.double(), omega.double()
    core = om.T @ y  # (k, k) = Omega^T Sigma Omega
    m, w = torch.linalg.eigh((core + core.T) / 2)
    keep = m > rcond * m.max().clamp_min(0)
    if not keep.any():  # Sigma vanishes on span(Omega): only the complement's mean remains
        lam, basis = torch.zeros(k, dtype=y.dtype, device=y.device), om
    else:
        factor = (y @ w[:, keep]) / m[keep].sqrt()  # (d, r): Sigma_hat = factor factor^T
        q, r = torch.linalg.qr(factor)
        lam, v = torch.linalg.eigh(r @ r.T)
        lam, basis = lam.flip(0).clamp_min(0.0), q @ v.flip(1)  # (r,), (d, r)
        if basis.shape[1] < k:  # complete from Omega's part outside the Nystrom range, eigenvalue 0
            rest = om - basis @ (basis.T @ om)
            extra = torch.linalg.svd(rest, full_matrices=False).U[:, :k - basis.shape[1]]
            lam = torch.cat([lam, lam.new_zeros(k - basis.shape[1])])
            basis = torch.cat([basis, extra], 1)
    rho = max((trace - lam.sum().item()) / (d - k), 0.0)
    scale = 1.0 / (rho + tau)
    return LowRankInverse(basis.to(sketch.dtype).contiguous(), (1.0 / (lam + tau) - scale).to(sketch.dtype), scale)


def apply_lowrank(grad: torch.Tensor, inverse: LowRankInverse) -> torch.Tensor:
    """grad (out, d) @ P for P = scale I + U diag(coef) U^T, without forming P. Pure."""
    projected = (grad @ inverse.basis) * inverse.coef  # (out, k)
    return torch.addmm(grad, projected, inverse.basis.T, beta=inverse.scale)
