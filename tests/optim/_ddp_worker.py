"""Worker for test_dopr_ddp.py, run as `python -m torch.distributed.run --nproc_per_node 2 _ddp_worker.py OUT`.

Each rank trains the same seeded net on its half of every global batch with DoPr under DDP (step 1
accumulates two local micro-batches, the first under ``no_sync``) and rank 0 saves the parameters
for both bases and both AP forms (exact; cheap AP at rank 2, whose windows after the first are sketches)
to OUT.
"""

import itertools
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ttfkit.optim import DoPr

GLOBAL_BATCH = 8
STEPS = 3
RANKS = (None, 2)  # rank 2: both layers (7 and 25 inputs with the bias) take the low-rank path


def build_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.SiLU(), nn.Flatten(), nn.Linear(4 * 6, 3))


def global_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(GLOBAL_BATCH, 2, 6, generator=gen), torch.randn(GLOBAL_BATCH, 3, generator=gen))
            for _ in range(STEPS)]


def _loss(net, x, y):
    return ((net(x) - y) ** 2).mean()


def main(out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    results = {}
    for base, ap_rank in itertools.product(("adamw", "muon"), RANKS):
        net = build_net()
        ddp = DistributedDataParallel(net)
        opt = DoPr(ddp, base=base, lr=1e-2, damping=1e-2, stat_every=1, inverse_every=1, rank=ap_rank)
        for step, (x, y) in enumerate(global_batches()):
            xs, ys = x.chunk(world)[rank], y.chunk(world)[rank]
            opt.zero_grad()
            if step == 1:  # gradient accumulation: statistics must still count both micro-batches
                (x1, x2), (y1, y2) = xs.chunk(2), ys.chunk(2)
                with ddp.no_sync():
                    (_loss(ddp, x1, y1) / 2).backward()
                (_loss(ddp, x2, y2) / 2).backward()
            else:
                _loss(ddp, xs, ys).backward()
            opt.step()
        results[base, ap_rank] = {k: v.detach().clone() for k, v in net.state_dict().items()}
    if rank == 0:
        torch.save(results, out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
