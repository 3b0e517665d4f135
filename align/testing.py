"""Exact test fixture for alignment: a flow model whose data distribution is a Gaussian mixture.

Everything the alignment code approximates is available here in closed form (methods note,
"Test fixture"), so tests compare samplers against exact answers instead of against each other.

Convention (as everywhere in ttfkit): x_t = (1-t)·x_0 + t·x_1, x_0 ~ N(0, I), t = 0 noise, t = 1 data.
Data: p(x_1) = Σ_k w_k N(mu_k, s_k² I) in D dimensions. Given component k,
x_t ~ N(t·mu_k, v_k I) with v_k = t² s_k² + (1-t)², E[x_1 | x_t, k] = mu_k + (t s_k² / v_k)(x_t - t mu_k)
and Cov[x_1 | x_t, k] = s_k² (1-t)² / v_k · I.

Precision form used for transitions: the view y_t = x_t / t = x_1 + noise of variance g(t) = ((1-t)/t)²,
lam(t) = 1/g(t) = (t/(1-t))². The transition kernel sampled by GLASS (and by
:meth:`GaussianMixtureFlow.transition`) is the Markov one in which the noisier view is the less noisy
view plus independent noise: y_t = y_t' + N(0, g(t) - g(t')) for t < t'.

Tensors are (N, D) or (N, *event) with prod(event) == D; outputs keep the input's shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["GaussianMixtureFlow", "energy_distance", "energy_noise_floor"]


class GaussianMixtureFlow:
    """Flow model with exact velocity, posterior, transitions, values and tilted targets.

    Args:
        weights: (K,) mixture weights (normalised here; must be positive).
        means: (K, D) component means mu_k.
        stds: (K,) isotropic component standard deviations s_k (> 0).

    Implements the flow-model interface ``velocity(t (N,), x (N, ...), cond) -> (N, ...)`` and the
    posterior interface used by :mod:`ttfkit.align.smc` (``posterior_sample``, ``transition``) exactly.
    ``cond`` is accepted and ignored. The object is stateless (pure methods).
    """

    def __init__(self, weights: Tensor, means: Tensor, stds: Tensor) -> None:
        weights, means, stds = torch.as_tensor(weights), torch.as_tensor(means), torch.as_tensor(stds)
        if means.ndim != 2:
            raise ValueError(f"means must be (K, D), got shape {tuple(means.shape)}")
        k = means.shape[0]
        if weights.shape != (k,) or stds.shape != (k,):
            raise ValueError(
                f"weights and stds must be ({k},) to match means {tuple(means.shape)}, got "
                f"{tuple(weights.shape)} and {tuple(stds.shape)}"
            )
        if (weights <= 0).any() or (stds <= 0).any():
            raise ValueError(f"weights and stds must be positive, got {weights.tolist()}, {stds.tolist()}")
        dtype = means.dtype if means.is_floating_point() else torch.get_default_dtype()
        self.means = means.to(dtype)
        self.weights = (weights / weights.sum()).to(dtype)
        self.stds = stds.to(dtype)
        self.dim = means.shape[1]

    # ----------------------------------------------------------------------------- flow model
    def velocity(self, t: Tensor, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Exact u(t, x) = E[x_1 - x_0 | x_t = x], written without dividing by (1-t)."""
        xf, tt = self._flat(x), self._time(t, x)  # (N, D), (N, 1)
        var = self._var(tt)  # (N, K)
        resp = self._responsibilities(tt, xf, var)  # (N, K)
        s2 = self.stds**2
        # u_k = (mu_k (1-t) + x (t s_k² - (1-t))) / v_k
        coef_x = (tt * s2 - (1 - tt)) / var  # (N, K)
        coef_mu = (1 - tt) / var  # (N, K)
        u = (resp * coef_x).sum(1, keepdim=True) * xf + (resp * coef_mu) @ self.means
        return u.reshape(x.shape)

    def denoiser(self, t: Tensor, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Exact D(t, x) = E[x_1 | x_t = x]."""
        mean, _, resp = self._posterior_components(t, x)
        return torch.einsum("nk,nkd->nd", resp, mean).reshape(x.shape)

    # ----------------------------------------------------------------------------- sampling
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n data samples x_1 ~ p(x_1), shape (n, D)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        return self.means[k] + self.stds[k, None] * eps

    def marginal_sample(self, t: float, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n samples of x_t ~ p_t, shape (n, D)."""
        x1 = self.sample(n, generator=generator)
        x0 = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        return (1 - t) * x0 + t * x1

    def posterior_sample(
        self,
        t: Tensor | float,
        x_t: Tensor,
        cond: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Exact x_1 ~ p(x_1 | x_t), one per row of x_t.

        ``noise`` (shape of x_t) replaces the Gaussian draw within the chosen component; the component
        itself is still drawn from ``generator`` (so samples are not reparameterised across components).
        """
        mean, var, resp = self._posterior_components(t, x_t)  # (N, K, D), (N, K), (N, K)
        k = torch.multinomial(resp.detach(), 1, generator=generator)[:, 0]  # (N,)
        rows = torch.arange(x_t.shape[0])
        if noise is None:
            eps = torch.randn(x_t.shape[0], self.dim, generator=generator, dtype=mean.dtype)
        else:
            eps = noise.reshape(x_t.shape[0], self.dim).to(mean.dtype)
        return (mean[rows, k] + var[rows, k, None].sqrt() * eps).reshape(x_t.shape)

    def transition(
        self,
        t: Tensor | float,
        t_next: Tensor | float,
        x_t: Tensor,
        cond: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Exact x_t' ~ p(x_t' | x_t) of the GLASS (Markov) kernel, t < t' <= 1.

        With y = x/t: y_t = y_t' + N(0, g(t) - g(t')), y_t' | k ~ N(mu_k, s_k² + g(t')). Written with
        precisions so that t = 0 (no information) and t' = 1 (posterior sample) need no special case.
        """
        xf, tt, tn = self._flat(x_t), self._time(t, x_t), self._time(t_next, x_t)  # (N, D), (N, 1), (N, 1)
        if (tn <= tt).any() or (tn > 1).any():
            raise ValueError("transition needs t < t_next <= 1")
        resp = self._responsibilities(tt, xf, self._var(tt))  # (N, K)
        g_next = ((1 - tn) / tn) ** 2  # (N, 1)
        ratio = (tt * (1 - tn)) ** 2 / ((1 - tt) * tn) ** 2  # lam(t)/lam(t'), in [0, 1)
        a = (tt / (1 - tt)) ** 2 / (1 - ratio)  # 1/(g(t) - g(t')), (N, 1)
        b = xf * tt / (1 - tt) ** 2 / (1 - ratio)  # y_t · a, (N, D)
        prior_var = self.stds**2 + g_next  # (N, K)
        prec = 1 / prior_var + a  # (N, K)
        mean = (self.means[None] / prior_var[..., None] + b[:, None]) / prec[..., None]  # (N, K, D)
        k = torch.multinomial(resp, 1, generator=generator)[:, 0]
        rows = torch.arange(xf.shape[0])
        eps = torch.randn(xf.shape, generator=generator, dtype=mean.dtype)
        y_next = mean[rows, k] + (1 / prec[rows, k, None]).sqrt() * eps
        return (tn * y_next).reshape(x_t.shape)

    # ----------------------------------------------------------------------------- densities, values
    def marginal_log_prob(self, t: Tensor | float, x: Tensor) -> Tensor:
        """log p_t(x), shape (N,)."""
        xf, tt = self._flat(x), self._time(t, x)
        return torch.logsumexp(self._log_joint(tt, xf, self._var(tt)), dim=1)

    def tilt(self, center: Tensor, tau: float) -> GaussianMixtureFlow:
        """Exact target p_r ∝ p·exp(r) for r(x) = -|x - center|²/(2 tau²): again a Gaussian mixture."""
        c = torch.as_tensor(center, dtype=self.means.dtype).reshape(self.dim)
        s2, tau2 = self.stds**2, tau**2
        prec = 1 / s2 + 1 / tau2  # (K,)
        means = (self.means / s2[:, None] + c / tau2) / prec[:, None]
        logw = self.weights.log() - 0.5 * self.dim * torch.log(s2 + tau2)
        logw = logw - ((c - self.means) ** 2).sum(1) / (2 * (s2 + tau2))
        return GaussianMixtureFlow(torch.softmax(logw, 0), means, prec.rsqrt())

    def value(self, t: Tensor | float, x: Tensor, center: Tensor, tau: float) -> Tensor:
        """Exact V_t(x) = log E[exp r(X_1) | X_t = x] for r(x) = -|x - center|²/(2 tau²), shape (N,).

        Differentiable in x (use :meth:`value_grad` for ∇V). At t = 0 it is the constant log E[exp r].
        """
        return self._log_mgf(t, x, center, tau, scale=1.0)

    def value_grad(self, t: Tensor | float, x: Tensor, center: Tensor, tau: float) -> Tensor:
        """Exact ∇_x V_t(x), same shape as x (autograd through :meth:`value`)."""
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.value(t, xg, center, tau).sum(), xg)
        return grad

    def reward_moments(self, t: Tensor | float, x: Tensor, center: Tensor, tau: float) -> tuple[Tensor, Tensor]:
        """(log E[e^r | x_t], log E[e^{2r} | x_t]), each (N,): the delta-method spread of value estimates."""
        return self._log_mgf(t, x, center, tau, 1.0), self._log_mgf(t, x, center, tau, 2.0)

    # ----------------------------------------------------------------------------- pieces
    def _log_mgf(self, t: Tensor | float, x: Tensor, center: Tensor, tau: float, scale: float) -> Tensor:
        # E_k[exp(-scale |X - c|²/(2 tau²))] for X ~ N(m_k, σ_k² I), with tau_eff² = tau²/scale.
        mean, var, resp = self._posterior_components(t, x)
        c = torch.as_tensor(center, dtype=mean.dtype).reshape(1, 1, self.dim)
        tau2 = tau**2 / scale
        log_e = 0.5 * self.dim * torch.log(tau2 / (tau2 + var)) - ((mean - c) ** 2).sum(-1) / (2 * (tau2 + var))
        return torch.logsumexp(resp.clamp_min(1e-300).log() + log_e, dim=1)

    def _posterior_components(self, t: Tensor | float, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-component posterior means (N, K, D), variances (N, K) and responsibilities (N, K)."""
        xf, tt = self._flat(x), self._time(t, x)
        var_t = self._var(tt)  # (N, K)
        resp = self._responsibilities(tt, xf, var_t)
        s2 = self.stds**2
        gain = tt * s2 / var_t  # (N, K)
        mean = self.means[None] + gain[..., None] * (xf[:, None] - tt[..., None] * self.means[None])
        var = s2 * (1 - tt) ** 2 / var_t
        return mean, var, resp

    def _var(self, tt: Tensor) -> Tensor:
        return tt**2 * self.stds**2 + (1 - tt) ** 2  # (N, K)

    def _log_joint(self, tt: Tensor, xf: Tensor, var: Tensor) -> Tensor:
        d2 = ((xf[:, None] - tt[..., None] * self.means[None]) ** 2).sum(-1)  # (N, K)
        return self.weights.log() - 0.5 * self.dim * torch.log(2 * math.pi * var) - d2 / (2 * var)

    def _responsibilities(self, tt: Tensor, xf: Tensor, var: Tensor) -> Tensor:
        return torch.softmax(self._log_joint(tt, xf, var), dim=1)

    def _flat(self, x: Tensor) -> Tensor:
        xf = x.reshape(x.shape[0], -1)
        if xf.shape[1] != self.dim:
            raise ValueError(f"x of shape {tuple(x.shape)} does not flatten to (N, {self.dim})")
        return xf.to(self.means.dtype)

    def _time(self, t: Tensor | float, x: Tensor) -> Tensor:
        tt = torch.as_tensor(t, dtype=self.means.dtype)
        if tt.ndim == 0:
            tt = tt.expand(x.shape[0])
        if tt.shape != (x.shape[0],):
            raise ValueError(f"t must be a scalar or ({x.shape[0]},), got shape {tuple(tt.shape)}")
        return tt[:, None]  # (N, 1)


def energy_distance(x: Tensor, y: Tensor) -> float:
    """Energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| between sample sets (n, ...) and (m, ...) (V-statistic
    diagonal excluded: U-statistics for the within-set terms, so the expectation is 0 when p = q)."""
    xf, yf = x.reshape(x.shape[0], -1).double(), y.reshape(y.shape[0], -1).double()
    n, m = xf.shape[0], yf.shape[0]
    dxy = torch.cdist(xf, yf).mean()
    dxx = torch.cdist(xf, xf).sum() / (n * (n - 1))
    dyy = torch.cdist(yf, yf).sum() / (m * (m - 1))
    return float(2 * dxy - dxx - dyy)


def energy_noise_floor(
    sampler: Callable[[int, torch.Generator], Tensor],
    n: int,
    m: int,
    *,
    repeats: int = 20,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """(mean, std) of the energy distance between two independent exact sample sets of sizes n and m.

    ``sampler(k, generator)`` returns k exact samples; a test threshold is typically mean + 4·std.
    """
    vals = torch.tensor([energy_distance(sampler(n, generator), sampler(m, generator)) for _ in range(repeats)])
    return float(vals.mean()), float(vals.std())
