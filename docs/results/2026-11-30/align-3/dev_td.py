"""Dev (offline): does a bootstrapped (TD) chunk critic rank candidates at one state better than the
Monte-Carlo one? Fitted on base-policy rollouts (seeds 300000+), scored on the rollout-labelled candidate
sets of align-2's dev_rank.py (best-of-4 with the rollout reward, seeds 340000+). No evaluation seed.

Targets for a chunk planned at s_t and executed for 8 steps, reaching s_t+8:
  mc   y = episode success (today's critic)
  td   y = V(s_t+8), V an observation-only success classifier (MC), y = outcome at the last chunk
  sarsa  y = Q(s_t+8, a_t+8) iterated (fitted Q evaluation on the executed next chunk), 3 rounds

python dev_td.py DATA RANK_DATA [members] [steps]
"""
import sys
import numpy as np
import torch
from safetensors.torch import load_file
from scipy.stats import spearmanr
from torch import nn

torch.set_num_threads(1)


def mlp(d_in):
    return nn.Sequential(nn.Linear(d_in, 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(), nn.Linear(256, 1))


def fit(x, y, members, steps, seed):
    """Ensemble of BCE-with-soft-targets MLPs on bootstrap resamples of the rows."""
    gen = torch.Generator().manual_seed(seed)
    nets = []
    for _ in range(members):
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
        net, rows = mlp(x.shape[1]), torch.randint(0, len(x), (len(x),), generator=gen)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
        for _ in range(steps):
            i = rows[torch.randint(0, len(rows), (256,), generator=gen)]
            loss = nn.functional.binary_cross_entropy_with_logits(net(x[i])[:, 0], y[i])
            opt.zero_grad(); loss.backward(); opt.step()
        nets.append(net.eval())
    return lambda z: torch.stack([n(z)[:, 0] for n in nets]).mean(0)


def score(q_fn, rank):
    n, k = rank["cand"].shape[:2]
    sp, pick, rnd, best, mixed_pick, mixed_rnd = [], [], [], [], [], []
    with torch.no_grad():
        for i in range(n):
            v = rank["value"][i]
            if v.max() - v.min() < 1e-4:
                continue
            q = q_fn(torch.cat([rank["cond"][i][None].expand(k, -1), rank["cand"][i].flatten(1)], 1))
            sp.append(spearmanr(q.numpy(), v.numpy()).statistic)
            pick.append(float(v[q.argmax()])); rnd.append(float(v.mean())); best.append(float(v.max()))
            ok = v > 0.5
            if ok.any() and not ok.all():  # candidates disagree on success: the states that matter
                mixed_pick.append(float(ok[q.argmax()])); mixed_rnd.append(float(ok.float().mean()))
    return (f"spearman {np.nanmean(sp):+.3f} pick {np.mean(pick):.3f} random {np.mean(rnd):.3f} "
            f"best {np.mean(best):.3f} | mixed-success states {len(mixed_pick)}: pick succeeds "
            f"{np.mean(mixed_pick):.3f} vs random {np.mean(mixed_rnd):.3f}")


def main():
    data, rank = load_file(sys.argv[1]), load_file(sys.argv[2])
    members = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
    x = torch.cat([data["cond"], data["chunk"].flatten(1)], 1)
    ep, step, ok = data["episode"].tolist(), data["step"].tolist(), data["success"]
    where = {(e, s): i for i, (e, s) in enumerate(zip(ep, step))}
    nxt = torch.tensor([where.get((e, s + 8), -1) for e, s in zip(ep, step)])
    last = nxt < 0
    print(f"{len(x)} chunks, {len(set(ep))} episodes, {int(last.sum())} terminal", flush=True)

    q_mc = fit(x, ok, members, steps, 0)
    print("mc    ", score(q_mc, rank), flush=True)

    v = fit(data["cond"], ok, members, steps, 1)
    with torch.no_grad():
        vnext = torch.sigmoid(v(data["cond"][nxt.clamp_min(0)]))
    y_td = torch.where(last, ok, vnext)
    q_td = fit(x, y_td, members, steps, 2)
    print("td    ", score(q_td, rank), flush=True)

    y = y_td
    q = q_td
    for r in range(3):
        with torch.no_grad():
            y = torch.where(last, ok, torch.sigmoid(q(x[nxt.clamp_min(0)])))
        q = fit(x, y, members, steps, 3 + r)
        print(f"sarsa{r + 1}", score(q, rank), flush=True)


if __name__ == "__main__":
    main()
