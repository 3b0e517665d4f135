"""Optimizer registry: AdamW / Muon builds, decay on matrices only, flattened-conv Muon, HybridOptimizer."""

import copy

import pytest
import torch
from torch import nn

from ttfkit.optim import (
    HybridOptimizer,
    OptimizerConfig,
    get_optimizer_config,
    list_optimizers,
    make_optimizer,
    register_optimizer,
    split_param_groups,
)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.conv = nn.Conv1d(4, 6, 3, padding=1)
        self.norm = nn.LayerNorm(6)
        self.head = nn.Linear(6, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)

    def forward(self, tokens):  # (B, L) int -> (B, L, 2)
        h = self.conv(self.embed(tokens).transpose(1, 2)).transpose(1, 2)
        return self.frozen(self.head(self.norm(h)))


def _matrix_ids(net):
    return {id(net.conv.weight), id(net.head.weight)}


def _loss(net, gen):
    tokens = torch.randint(0, 5, (4, 7), generator=gen)
    return net(tokens).pow(2).mean()


def test_split_and_adamw_groups():
    net = _Net()
    matrices, rest = split_param_groups(net)
    assert {id(p) for p in matrices} == _matrix_ids(net)
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    assert {id(p) for p in matrices} | {id(p) for p in rest} == trainable and not set(map(id, matrices)) & set(map(id, rest))
    opt = make_optimizer("adamw", net, lr=1e-3, weight_decay=0.1)
    assert isinstance(opt, torch.optim.AdamW)
    by_decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    assert by_decay[0.1] == _matrix_ids(net) and by_decay[0.0] == trainable - _matrix_ids(net)


@pytest.mark.parametrize("name", ["adamw", "muon", "dopr-adamw", "dopr-muon"])
def test_weight_decay_only_on_matrices(name):
    net = _Net()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = make_optimizer(name, net, lr=0.1, weight_decay=0.5)
    _loss(net, torch.Generator().manual_seed(0)).backward()
    for p in net.parameters():
        if p.grad is not None:
            p.grad.zero_()  # zero gradient: the only change left is the decoupled decay
    opt.step()
    for n, p in net.named_parameters():
        factor = 1 - 0.1 * 0.5 if id(p) in _matrix_ids(net) else 1.0
        torch.testing.assert_close(p.detach(), before[n] * factor, rtol=1e-6, atol=1e-7)


def _newton_schulz_reference(g, steps=5):
    """Quintic Newton-Schulz orthogonalisation (Jordan et al. coefficients) in float32.

    torch runs the same iteration in bfloat16, which moves the result by about 1% (relative norm).
    """
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.float()
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / x.norm().clamp_min(1e-7)
    for _ in range(steps):
        s = x @ x.T
        x = a * x + (b * s + c * (s @ s)) @ x
    return x.T if tall else x


def test_muon_flattens_conv_weights_and_matches_reference_update():
    gen = torch.Generator().manual_seed(1)
    conv = nn.Conv1d(4, 6, 3)
    lr, wd, momentum = 0.02, 0.1, 0.95
    opt = make_optimizer("muon", conv, lr=lr, weight_decay=wd, momentum=momentum)
    assert isinstance(opt, HybridOptimizer) and len(opt.parts) == 2  # Muon(weight) + AdamW(bias)
    weight = conv.weight.detach().clone()
    buf = torch.zeros(6, 12)
    for _ in range(2):
        grad = torch.randn(6, 4, 3, generator=gen)
        conv.weight.grad, conv.bias.grad = grad.clone(), torch.zeros(6)
        opt.step()
        g = grad.reshape(6, 12)
        buf = momentum * buf + (1 - momentum) * g
        nesterov = (1 - momentum) * g + momentum * buf
        update = _newton_schulz_reference(nesterov)
        lr_adjusted = lr * 0.2 * max(6, 12) ** 0.5  # "match_rms_adamw" on the (out, in*k) matrix
        weight = weight * (1 - lr * wd) - lr_adjusted * update.reshape(6, 4, 3)
        step_size = lr_adjusted * update.norm()
        assert (conv.weight.detach() - weight).norm() <= 0.03 * step_size  # bfloat16 iterations
    singular = torch.linalg.svdvals(update)
    assert singular.min() > 0.3 and singular.max() < 1.5  # it is (approximately) orthogonal


def _train(opt, net, gen, steps):
    for _ in range(steps):
        opt.zero_grad()
        _loss(net, gen).backward()
        opt.step()


def test_hybrid_state_dict_round_trip_resumes_identically():
    torch.manual_seed(0)
    net = _Net()
    opt = make_optimizer("muon", net, lr=1e-2, weight_decay=0.01)
    _train(opt, net, torch.Generator().manual_seed(2), 3)
    saved_net, saved_opt = copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict())
    _train(opt, net, torch.Generator().manual_seed(3), 3)
    net2 = _Net()
    net2.load_state_dict(saved_net)
    opt2 = make_optimizer("muon", net2, lr=1e-2, weight_decay=0.01)
    opt2.load_state_dict(saved_opt)
    _train(opt2, net2, torch.Generator().manual_seed(3), 3)
    for p, q in zip(net.parameters(), net2.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    with pytest.raises(ValueError, match="parts"):
        opt2.load_state_dict({"parts": saved_opt["parts"][:1]})


def test_lr_scheduler_sees_every_group_of_the_hybrid():
    net = _Net()
    opt = make_optimizer("muon", net, lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 ** step)
    gen = torch.Generator().manual_seed(4)
    for _ in range(3):
        _train(opt, net, gen, 1)
        sched.step()
    groups = opt.param_groups
    assert len(groups) == 2 and {type(p).__name__ for p in opt.parts} == {"_FlatMuon", "AdamW"}
    assert all(g["lr"] == pytest.approx(0.1 * 0.5 ** 3) for g in groups)
    assert all(part.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 3) for part in opt.parts)
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append(1))
    _train(opt, net, gen, 2)
    assert len(calls) == 2
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_registry_lookups_and_errors():
    assert {"adamw", "muon", "dopr-adamw", "dopr-muon"} <= set(list_optimizers())
    assert get_optimizer_config("adamw", lr=3e-4).lr == 3e-4
    with pytest.raises(KeyError, match="unknown optimizer 'sgd-x'"):
        make_optimizer("sgd-x", _Net())
    with pytest.raises(TypeError, match="no option"):
        get_optimizer_config("adamw", momentum=0.9)
    with pytest.raises(ValueError, match="lr"):
        get_optimizer_config("muon", lr=0.0)
    with pytest.raises(ValueError, match="already registered"):
        register_optimizer("adamw")(OptimizerConfig)
