"""Dev (issue 12): a generative verifier. Bayes: log P(success | s, a) = log p(a | s, success) - log p(a | s)
+ const(s), so ranking candidates at one state needs only the ratio of two action densities, which flow
models estimate well. p(a | s, success): the base policy's velocity net fine-tuned on the chunks of its own
successful rollouts; p(a | s): the base policy (or the same fine-tune on all rollouts, "all"). The log-density
gap is estimated with the flow-matching loss at shared (t, noise) draws (the loss is a weighted ELBO-like bound).

offline: fit on align-2's 400 base episodes of stick-pull seed 0 (outputs/mc/stick0/data400.safetensors) and
score align-2's 789 rollout-labelled candidate sets (rank_data.safetensors, 4 candidates per state, each with its
simulator look-ahead value): within-state Spearman and the pick's success where candidates disagree.

    python docs/results/2026-11-30/align-5/dev_ratio.py CKPT DATA RANK [steps] [draws]
"""
import copy
import sys

import numpy as np
import torch
from safetensors.torch import load_file
from scipy.stats import spearmanr

from ttfkit.policies import load


def finetune(policy, cond, chunk, steps, lr=1e-4, batch=256, seed=0):
    model = copy.deepcopy(policy)
    opt = torch.optim.AdamW(model.backbone.parameters(), lr=lr, weight_decay=1e-6)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        i = torch.randint(0, len(cond), (batch,), generator=gen)
        a = chunk[i]
        eps = torch.randn(a.shape, generator=gen)
        t = torch.rand(batch, generator=gen)
        x = (1 - t[:, None, None]) * eps + t[:, None, None] * a
        loss = ((model.velocity(t, x, cond[i]) - (a - eps)) ** 2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    return model.eval()


@torch.no_grad()
def fm_loss(model, cond, a, eps, t):
    """Per-sample flow-matching loss at the given draws: cond (B, Dc), a (B, H, Da), eps (K, B, H, Da), t (K, B)."""
    out = []
    for k in range(len(t)):
        x = (1 - t[k][:, None, None]) * eps[k] + t[k][:, None, None] * a
        out.append(((model.velocity(t[k], x, cond) - (a - eps[k])) ** 2).mean((1, 2)))
    return torch.stack(out).mean(0)


def score(models, d, draws):
    n, N = d["cand"].shape[:2]
    cond = d["cond"][:, None].expand(-1, N, -1).reshape(n * N, -1)
    a = d["cand"].reshape(n * N, *d["cand"].shape[2:])
    gen = torch.Generator().manual_seed(1)
    eps = torch.randn((draws, *a.shape), generator=gen)
    t = torch.rand((draws, n * N), generator=gen)
    return {name: fm_loss(m, cond, a, eps, t).view(n, N) for name, m in models.items()}


def report(name, r, d):
    v, ok = d["value"], d["value"] > 0.5  # rollout value: success first (>= 1), then shaped return in [0, 1)
    sp, pick, rnd, mixed_pick, mixed_rnd = [], [], [], [], []
    for i in range(len(v)):
        if v[i].max() - v[i].min() < 1e-4:
            continue
        sp.append(spearmanr(r[i].numpy(), v[i].numpy()).statistic)
        j = int(r[i].argmax())
        pick.append(float(v[i, j])); rnd.append(float(v[i].mean()))
        if ok[i].any() and not ok[i].all():
            mixed_pick.append(float(ok[i, j])); mixed_rnd.append(float(ok[i].float().mean()))
    print(f"{name:28s} spearman {np.nanmean(sp):+.3f}  pick value {np.mean(pick):.3f} random {np.mean(rnd):.3f}  "
          f"mixed states {len(mixed_pick)}: pick succeeds {np.mean(mixed_pick):.3f} random {np.mean(mixed_rnd):.3f}",
          flush=True)


def main(ckpt, data, rank, steps=2000, draws=16):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    policy = load(ckpt).eval()
    base = load_file(data)
    d = load_file(rank)
    print("value range", float(d["value"].min()), float(d["value"].max()), "success rows", float(base["success"].mean()))
    win = base["success"] > 0.5
    models = {"base": policy,
              "succ": finetune(policy, base["cond"][win], base["chunk"][win], steps),
              "all": finetune(policy, base["cond"], base["chunk"], steps),
              "fail": finetune(policy, base["cond"][~win], base["chunk"][~win], steps)}
    L = score(models, d, draws)
    report("succ vs base", L["base"] - L["succ"], d)
    report("succ vs all", L["all"] - L["succ"], d)
    report("succ vs fail", L["fail"] - L["succ"], d)
    report("base likelihood", -L["base"], d)
    report("random (seeded)", torch.rand(L["base"].shape, generator=torch.Generator().manual_seed(5)), d)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], *(int(x) for x in sys.argv[4:]))
