"""Cheap AP (rank-k-plus-isotropic inverse) against exact AP: closed-form cases where it is exact."""

import copy

import pytest
import torch
from torch import nn

from ttfkit.optim import ActivationPreconditioner, DoPr, make_optimizer
from ttfkit.optim.lowrank import apply_lowrank, lowrank_inverse, nystrom_inverse, top_eigenpairs
from ttfkit.scripts.bench_optim import regression_steps


def _rel_err(actual, expected):
    return ((actual.double() - expected.double()).norm() / expected.double().norm()).item()


def _low_rank_plus_identity(d, r, floor, generator):
    """Sigma = V diag(l) V^T + floor I with r eigenvalues in [1, 10] above the floor; V (d, r) orthonormal."""
    v, _ = torch.linalg.qr(torch.randn(d, r, generator=generator, dtype=torch.float64))
    top = torch.linspace(10.0, 1.0, r, dtype=torch.float64)
    return (v * top) @ v.T + floor * torch.eye(d, dtype=torch.float64)


def test_full_rank_equals_the_exact_inverse():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(50, 12, generator=gen, dtype=torch.float64) @ torch.randn(12, 12, generator=gen, dtype=torch.float64)
    sigma = z.T @ z / 50
    tau = 1e-2 * sigma.trace().item() / 12
    exact = torch.linalg.inv(sigma + tau * torch.eye(12, dtype=sigma.dtype))
    approx = lowrank_inverse(sigma, tau, k=12)
    assert _rel_err(approx.dense(), exact) < 1e-10
    g = torch.randn(5, 12, generator=gen, dtype=torch.float64)
    assert _rel_err(apply_lowrank(g, approx), g @ exact) < 1e-10


@pytest.mark.parametrize("warm", [False, True])
def test_rank_k_plus_identity_is_exact_at_rank_k(warm):
    gen = torch.Generator().manual_seed(1)
    d, k, tau = 60, 6, 1e-3
    sigma = _low_rank_plus_identity(d, k, floor=0.01, generator=gen)
    exact = torch.linalg.inv(sigma + tau * torch.eye(d, dtype=sigma.dtype))
    start = None
    if warm:  # a previous refresh's basis: the top-k subspace, rotated within it and perturbed by 1e-3
        top = torch.linalg.eigh(sigma).eigenvectors[:, -k:]
        rotation, _ = torch.linalg.qr(torch.randn(k, k, generator=gen, dtype=sigma.dtype))
        start = top @ rotation + 1e-3 * torch.randn(d, k, generator=gen, dtype=sigma.dtype)
    approx = lowrank_inverse(sigma, tau, k, start=start, iters=2 if warm else 6,
                             generator=torch.Generator().manual_seed(0))
    assert _rel_err(approx.dense(), exact) < 1e-6
    g = torch.randn(7, d, generator=gen, dtype=torch.float64)
    assert _rel_err(apply_lowrank(g, approx), g @ exact) < 1e-6
    # one rank short, the missing eigenvalue is averaged into the complement: no longer exact
    assert _rel_err(lowrank_inverse(sigma, tau, k - 1, iters=6).dense(), exact) > 1e-2


def test_nystrom_from_an_invariant_basis_is_exact():
    # Sigma = V L V^T + rho I; a sketch against any orthonormal basis of span(V) gives the closed form
    gen = torch.Generator().manual_seed(11)
    d, k, tau = 50, 5, 1e-3
    sigma = _low_rank_plus_identity(d, k, floor=0.02, generator=gen)
    exact = torch.linalg.inv(sigma + tau * torch.eye(d, dtype=sigma.dtype))
    top = torch.linalg.eigh(sigma).eigenvectors[:, -k:]
    rotation, _ = torch.linalg.qr(torch.randn(k, k, generator=gen, dtype=sigma.dtype))
    omega = top @ rotation
    approx = nystrom_inverse(sigma @ omega, omega, sigma.trace().item(), tau)
    assert _rel_err(approx.dense(), exact) < 1e-10
    torch.testing.assert_close(approx.basis.T @ approx.basis, torch.eye(k, dtype=sigma.dtype), rtol=0, atol=1e-12)
    # a basis off the invariant subspace is an approximation (one power step)
    tilted, _ = torch.linalg.qr(omega + 0.3 * torch.randn(d, k, generator=gen, dtype=sigma.dtype))
    assert _rel_err(nystrom_inverse(sigma @ tilted, tilted, sigma.trace().item(), tau).dense(), exact) > 1e-3


def test_nystrom_of_a_low_rank_sigma_is_exact_and_completes_the_basis():
    # rank(Sigma) = 3 < k = 6: exact from a generic Omega; the basis is completed with eigenvalue 0
    gen = torch.Generator().manual_seed(12)
    d, k, tau = 30, 6, 1e-2
    z = torch.randn(3, d, generator=gen, dtype=torch.float64)
    sigma = z.T @ z / 3
    exact = torch.linalg.inv(sigma + tau * torch.eye(d, dtype=sigma.dtype))
    omega, _ = torch.linalg.qr(torch.randn(d, k, generator=gen, dtype=sigma.dtype))
    approx = nystrom_inverse(sigma @ omega, omega, sigma.trace().item(), tau)
    assert _rel_err(approx.dense(), exact) < 1e-6
    assert approx.basis.shape == (d, k)
    torch.testing.assert_close(approx.basis.T @ approx.basis, torch.eye(k, dtype=sigma.dtype), rtol=0, atol=1e-10)
    # Sigma = 0: only the damping remains
    zero = nystrom_inverse(torch.zeros(d, k, dtype=torch.float64), omega, 0.0, tau)
    torch.testing.assert_close(zero.dense(), torch.eye(d, dtype=torch.float64) / tau)
    with pytest.raises(ValueError, match="omega"):
        nystrom_inverse(sigma @ omega, omega[:, :-1], 1.0, tau)


def test_ritz_values_are_the_top_eigenvalues():
    gen = torch.Generator().manual_seed(2)
    q, _ = torch.linalg.qr(torch.randn(40, 40, generator=gen, dtype=torch.float64))
    eig = torch.logspace(0, -4, 40, dtype=torch.float64)
    sigma = (q * eig) @ q.T
    lam, basis = top_eigenpairs(sigma, 5, iters=30, generator=gen)
    torch.testing.assert_close(lam, eig[:5], rtol=1e-6, atol=0)
    torch.testing.assert_close(basis.T @ basis, torch.eye(5, dtype=torch.float64), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="rank k"):
        top_eigenpairs(sigma, 41)


@pytest.mark.parametrize("bias", [True, False])
def test_preconditioner_with_fewer_rows_than_rank_equals_exact_ap(bias):
    # n = 6 rows of d = 40 inputs: Sigma has rank <= 6 < k = 8, so the complement's eigenvalues are 0 and
    # the rank-8 form is exact; the layer (d > 2k) takes the low-rank path
    # (float32 against float32 Cholesky, condition number up to d / damping = 4e3: tolerance 1e-3)
    gen = torch.Generator().manual_seed(3)
    layer = nn.Linear(40, 5, bias=bias)
    x = torch.randn(6, 40, generator=gen) @ torch.randn(40, 40, generator=gen)
    w = torch.randn(6, 5, generator=gen)
    grads = {}
    for rank in (None, 8, 3):
        net = copy.deepcopy(layer)
        ap = ActivationPreconditioner(net, damping=1e-2, rank=rank)
        (net(x) * w).sum().backward()
        ap.precondition_()
        grads[rank] = (net.weight.grad, net.bias.grad if bias else None)
        if rank is not None:
            entry = ap.layers[""]
            assert entry.inverse is None and entry.lowrank.basis.shape == (40 + bias, rank)
    assert _rel_err(grads[8][0], grads[None][0]) < 1e-3
    if bias:
        assert _rel_err(grads[8][1], grads[None][1]) < 1e-3
    assert _rel_err(grads[3][0], grads[None][0]) > 1e-2  # rank 3 < rank(Sigma): an approximation


@pytest.mark.parametrize("bias", [True, False])
def test_sketched_refreshes_with_fewer_rows_than_rank_equal_exact_ap(bias):
    # after its first refresh a cheap-AP layer records Z~^T Z~ Omega instead of Z^T Z; with 6 rows per
    # window (rank(Sigma) <= 6 < k = 8) the Nystrom refresh is exact, so every step equals exact AP
    gen = torch.Generator().manual_seed(13)
    layer = nn.Linear(40, 5, bias=bias)
    mix = torch.randn(40, 40, generator=gen)
    batches = [(torch.randn(6, 40, generator=gen) @ mix, torch.randn(6, 5, generator=gen)) for _ in range(3)]
    grads = {}
    for rank in (None, 8):
        net = copy.deepcopy(layer)
        ap = ActivationPreconditioner(net, damping=1e-2, rank=rank)
        grads[rank] = []
        for x, w in batches:
            net.zero_grad()
            (net(x) * w).sum().backward()
            ap.precondition_()
            grads[rank].append(torch.cat([net.weight.grad, net.bias.grad[:, None]], 1) if bias else net.weight.grad.clone())
        if rank is not None:
            entry = ap.layers[""]
            assert entry.omega is not None and entry.sums.shape == ((40 + bias) * rank + 2,)
            with pytest.raises(ValueError, match="sketch"):
                entry.acc
    for cheap, exact in zip(grads[8], grads[None]):
        assert _rel_err(cheap, exact) < 1e-3


def test_dopr_defaults_to_cheap_ap_and_rank_none_is_exact():
    net = nn.Sequential(nn.Linear(300, 8), nn.ReLU(), nn.Linear(8, 2))  # d = 301 > 128, and 9
    x = torch.randn(16, 300, generator=torch.Generator().manual_seed(4))
    for rank, want in (("default", (False, True)), (None, (True, False))):
        opt = make_optimizer("dopr-adamw", net, lr=1e-3) if rank == "default" else \
            make_optimizer("dopr-adamw", net, lr=1e-3, rank=rank)
        opt.zero_grad()
        net(x).sum().backward()
        opt.step()
        first, second = opt.preconditioner.layers["0"], opt.preconditioner.layers["2"]
        assert (first.inverse is not None, first.lowrank is not None) == want
        assert second.inverse is not None  # 9 inputs: exact either way
        opt.preconditioner.remove()
    with pytest.raises(ValueError, match="rank"):
        make_optimizer("dopr-adamw", net, rank=0)


def test_state_dict_round_trip_with_low_rank_layers():
    gen = torch.Generator().manual_seed(5)
    make = lambda: nn.Sequential(nn.Linear(20, 6), nn.Tanh(), nn.Linear(6, 2))  # noqa: E731
    net = make()
    kw = dict(base="adamw", lr=1e-2, rank=3, stat_every=1, inverse_every=2)
    opt = DoPr(net, **kw)
    batches = [(torch.randn(8, 20, generator=gen), torch.randn(8, 2, generator=gen)) for _ in range(6)]

    def train(o, n, bs):
        for x, y in bs:
            o.zero_grad()
            ((n(x) - y) ** 2).mean().backward()
            o.step()

    train(opt, net, batches[:3])
    saved_model, saved_opt = copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict())
    assert saved_opt["preconditioner"]["layers"]["0"]["lowrank"] is not None
    train(opt, net, batches[3:])
    net2 = make()
    net2.load_state_dict(saved_model)
    opt2 = DoPr(net2, **kw)
    opt2.load_state_dict(saved_opt)
    train(opt2, net2, batches[3:])
    for p, q in zip(net.parameters(), net2.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_cheap_ap_keeps_part_of_exact_aps_advantage_on_the_toy():
    # the benchmark's correlated-regression toy (17 inputs with the bias; rank 4 takes the low-rank path)
    adamw = regression_steps("adamw", 0, 1e-2, max_steps=1500)
    exact = regression_steps("dopr-adamw", 0, 1e-2, max_steps=1500, stat_every=1, inverse_every=1, rank=None)
    cheap = regression_steps("dopr-adamw", 0, 1e-2, max_steps=1500, stat_every=1, inverse_every=1, rank=4)
    assert exact <= cheap < adamw < 1500, (exact, cheap, adamw)
