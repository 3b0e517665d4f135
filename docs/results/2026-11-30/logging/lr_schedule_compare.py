"""Trainer's LambdaLR (closed-form warmup + cosine) vs torch's SequentialLR(LinearLR, CosineAnnealingLR).

Run: python docs/results/2026-11-30/logging/lr_schedule_compare.py
Prints, per (steps, warmup, min_lr_ratio), the largest relative difference of the per-group lr over the whole
run for two parameter groups with different base lrs (3e-4 and 0.02, as a custom optimizer could have), and
whether SequentialLR loads a scheduler state dict saved by the trainer's LambdaLR (older checkpoints).
"""

import json

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

from ttfkit.policies.trainer import TrainConfig, _lr_scheduler


def _opt():
    ps = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    return torch.optim.SGD([{"params": ps[:1], "lr": 3e-4}, {"params": ps[1:], "lr": 0.02}], lr=1.0)


def _library(opt, steps, warm, floor, peak):
    cosine = CosineAnnealingLR(opt, T_max=max(1, steps - warm), eta_min=floor * peak)
    if warm == 0:
        return cosine
    return SequentialLR(opt, [LinearLR(opt, 1 / warm, 1.0, max(1, warm - 1)), cosine], milestones=[warm])


for steps, warm, floor in [(2000, 100, 0.0), (10000, 500, 0.0), (3000, 100, 0.1), (110, 10, 0.1)]:
    config = TrainConfig(dataset="", out="", steps=steps, warmup_steps=warm, min_lr_ratio=floor)
    a, b = _opt(), _opt()
    ours, lib = _lr_scheduler(a, config), _library(b, steps, warm, floor, peak=3e-4)
    worst = [0.0, 0.0]
    for i in range(steps + 1):
        for g, (x, y) in enumerate(zip(ours.get_last_lr(), lib.get_last_lr())):
            worst[g] = max(worst[g], abs(x - y) / x if x else abs(y))
        a.step(), b.step(), ours.step(), lib.step()
    try:
        _library(_opt(), steps, warm, floor, 3e-4).load_state_dict(ours.state_dict())
        loads = "yes"
    except Exception as err:  # noqa: BLE001 -- report what happens
        loads = f"no ({type(err).__name__}: {err})"
    print(json.dumps({"steps": steps, "warmup": warm, "min_lr_ratio": floor, "max_rel_diff_group_lr3e-4": worst[0],
                      "max_rel_diff_group_lr0.02": worst[1], "sequential_loads_lambdalr_state": loads}))
