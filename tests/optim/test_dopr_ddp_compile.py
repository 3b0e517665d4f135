"""DoPr under DDP (2-process gloo run vs one process at the same global batch) and torch.compile."""

import copy
import importlib.util
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ttfkit.optim import DoPr

_WORKER = Path(__file__).with_name("_ddp_worker.py")


def _load_worker():
    spec = importlib.util.spec_from_file_location("_dopr_ddp_worker", _WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_process_gloo_run_equals_single_process(tmp_path):
    worker = _load_worker()
    out = tmp_path / "ddp.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           str(_WORKER), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp_results = torch.load(out)
    for base, rank in itertools.product(("adamw", "muon"), worker.RANKS):
        net = worker.build_net()
        start = copy.deepcopy(net.state_dict())
        opt = DoPr(net, base=base, lr=1e-2, damping=1e-2, stat_every=1, inverse_every=1, rank=rank)
        for x, y in worker.global_batches():
            opt.zero_grad()
            worker._loss(net, x, y).backward()
            opt.step()
        for key, value in net.state_dict().items():
            assert not torch.allclose(value, start[key])
            # Muon's bfloat16 Newton-Schulz turns float32 reassociation into ~1e-4 (steps are ~1e-2)
            atol = 1e-5 if base == "adamw" else 3e-4
            torch.testing.assert_close(ddp_results[base, rank][key], value, rtol=0, atol=atol)
        if rank is not None:  # the last two windows were sketches, all-reduced across the ranks
            assert all(layer.omega is not None for layer in opt.preconditioner.layers.values())


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 2))


def test_compiled_and_eager_training_give_the_same_ap_gradients():
    gen = torch.Generator().manual_seed(2)
    batches = [(torch.randn(32, 6, generator=gen), torch.randn(32, 2, generator=gen)) for _ in range(3)]
    eager, compiled_base = _mlp(), _mlp()
    compiled = torch.compile(compiled_base, backend="aot_eager", fullgraph=False)
    opt_e = DoPr(eager, lr=1e-2, damping=1e-2, stat_every=2, inverse_every=1)  # stat_every=2: the recording flag flips
    opt_c = DoPr(compiled, lr=1e-2, damping=1e-2, stat_every=2, inverse_every=1)
    for step, (x, y) in enumerate(batches):
        for net, opt in ((eager, opt_e), (compiled, opt_c)):
            opt.zero_grad()
            ((net(x) - y) ** 2).mean().backward()
            counts = [layer.acc[-1, -1].item() for layer in opt.preconditioner.layers.values()]
            # the hooks ran inside the compiled module, and only on recording steps (0 and 2)
            assert counts == ([0.0] * 3 if step == 1 else [32.0] * 3)
            opt.step()
        for p, q in zip(eager.parameters(), compiled_base.parameters()):
            # after step(), .grad holds the AP gradient; float32 reassociation through the solve
            assert (q.grad - p.grad).norm() <= 1e-4 * p.grad.norm()
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-4)
    assert all(torch.equal(l.acc, torch.zeros_like(l.acc)) for l in opt_c.preconditioner.layers.values())
