"""Dev: distil the rollout reward's ranking into a chunk critic.
collect: best-of-4 with the rollout reward on reserved seeds (340000+), record every candidate set with
its rollout values. fit: pairwise logistic ranking loss within each state (+ BCE on episode outcome)."""
import sys, time, torch, numpy as np
from torch import nn
from safetensors.torch import save_file, load_file
import ttfkit.envs  # noqa
from ttfkit.policies import load
from ttfkit.align import critic as C
from ttfkit.align.policy import AlignConfig, AlignedPolicy
from ttfkit.align.rollout import RolloutTracker, RolloutValueReward
from ttfkit.envs import evaluate

def collect(ckpt, env, out, eps, seed):
    policy = load(ckpt)
    rollout = RolloutValueReward(policy, env, horizon=120, flow_steps=2)
    rows = []
    class Rec(RolloutTracker):
        def __call__(self, x, ctx):
            v = self.rollout(x, ctx)
            rows.append((ctx["cond"][0].clone(), policy._normalize("action", x).clone(), v.clone(),
                         self.rollout.shadow.seeds[ctx["slot"]]))
            return v
    aligned = AlignedPolicy(policy, Rec(rollout), AlignConfig(method="best-of-n", particles=4), seed_base=7)
    t = time.time()
    res = evaluate(aligned, env, eps, seed=seed, n_envs=1, workers=0,
                   on_episode=lambda n, ok: print("ep", n, ok, round(time.time() - t), flush=True))
    rollout.close()
    ok = dict(zip(res.seeds, res.successes))
    save_file({"cond": torch.stack([r[0] for r in rows]), "cand": torch.stack([r[1] for r in rows]),
               "value": torch.stack([r[2] for r in rows]).float(),
               "episode": torch.tensor([r[3] for r in rows]),
               "success": torch.tensor([float(ok.get(r[3], 0)) for r in rows])}, out)
    print("collected", len(rows), "states; aligned success", sum(res.successes), "/", eps, flush=True)

def fit(ckpt, data_path, base_path, out, steps=3000, members=5, held=None):
    policy = load(ckpt)
    d = load_file(data_path)
    n, N = d["cand"].shape[:2]
    ep = d["episode"]
    ids = torch.unique(ep)
    gen = torch.Generator().manual_seed(0)
    perm = ids[torch.randperm(len(ids), generator=gen)]
    test = torch.isin(ep, perm[:held]) if held else torch.zeros(n, dtype=bool)
    pc = policy.config
    critic = C.ChunkCritic(d["cond"].shape[1], pc.horizon, pc.action_dim, members=members)
    base = load_file(base_path)  # episode-outcome rows of the base policy
    for m in critic.members:
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=1e-4)
        tr = (~test).nonzero()[:, 0]
        tr = tr[torch.randint(0, len(tr), (len(tr),), generator=gen)]  # bootstrap states
        for _ in range(steps):
            idx = tr[torch.randint(0, len(tr), (128,), generator=gen)]
            c = d["cond"][idx][:, None].expand(-1, N, -1).reshape(len(idx) * N, -1)
            q = m(torch.cat([c, d["cand"][idx].reshape(len(idx) * N, -1)], 1))[:, 0].view(len(idx), N)
            v = d["value"][idx]
            dv = v[:, :, None] - v[:, None, :]
            mask = dv > 1e-4
            dq = q[:, :, None] - q[:, None, :]
            rank = nn.functional.softplus(-dq[mask]).mean() if mask.any() else q.sum() * 0
            bi = torch.randint(0, len(base["success"]), (256,), generator=gen)
            bce = nn.functional.binary_cross_entropy_with_logits(
                m(torch.cat([base["cond"][bi], base["chunk"][bi].flatten(1)], 1))[:, 0], base["success"][bi])
            loss = rank + bce
            opt.zero_grad(); loss.backward(); opt.step()
    critic.eval()
    if held:
        from scipy.stats import spearmanr
        sp, pick, rnd, best = [], [], [], []
        with torch.no_grad():
            for i in test.nonzero()[:, 0]:
                v = d["value"][i]
                if v.max() - v.min() < 1e-4: continue
                q = critic(d["cond"][i][None].expand(N, -1), d["cand"][i])
                sp.append(spearmanr(q.numpy(), v.numpy()).statistic)
                pick.append(float(v[q.argmax()])); rnd.append(float(v.mean())); best.append(float(v.max()))
        print(f"held-out states {len(sp)}: spearman {np.nanmean(sp):.3f}  value of pick {np.mean(pick):.3f} "
              f"random {np.mean(rnd):.3f} best {np.mean(best):.3f}", flush=True)
    critic.meta.update(env_id=None, policy_fingerprint=C.policy_fingerprint(policy), label="rank")
    C.save_critic(critic, out)

if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "collect":
        collect(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    else:
        fit(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], held=int(sys.argv[6]) if len(sys.argv) > 6 else None)
