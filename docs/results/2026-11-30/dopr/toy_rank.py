"""Correlated-regression toy (scripts/bench_optim.py's regression_steps) at three widths: AdamW vs exact AP vs
cheap AP of several ranks, per-batch (1, 1) and DoPr's default schedule (10, 50); median of 3 seeds.

    python docs/results/2026-11-30/dopr/toy_rank.py
"""
import statistics

import torch

from ttfkit.scripts.bench_optim import regression_steps

torch.set_num_threads(1)
for dim, ranks in ((16, (2, 4, 7)), (64, (8, 16, 31)), (256, (16, 32, 64))):
    adamw = statistics.median(regression_steps("adamw", s, 1e-2, dim=dim, max_steps=3000) for s in range(3))
    line = f"d={dim} adamw {adamw}"
    for s_every, i_every in ((1, 1), (10, 50)):
        kw = dict(dim=dim, max_steps=3000, stat_every=s_every, inverse_every=i_every)
        exact = statistics.median(regression_steps("dopr-adamw", s, 1e-2, rank=None, **kw) for s in range(3))
        line += f" | {(s_every, i_every)} exact {exact}"
        for r in ranks:
            line += f" r{r} " + str(statistics.median(regression_steps("dopr-adamw", s, 1e-2, rank=r, **kw)
                                                      for s in range(3)))
    print(line, flush=True)
