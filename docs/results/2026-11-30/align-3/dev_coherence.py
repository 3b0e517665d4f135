"""Dev closed-loop check of the coherence reward (dev seeds 330000+, never evaluation seeds).

python dev_coherence.py CKPT ENV VARIANT N EPISODES [SEED]
VARIANT: none | coherence | critic | critic+coherence:W (r = critic + W * coherence) | topk:K (the K
best chunks by the critic, then the most coherent of them)
"""
import json, sys, time
import torch
import ttfkit.envs  # noqa
from ttfkit.align.policy import AlignConfig, AlignedPolicy
from ttfkit.align.rewards import make_reward
from ttfkit.envs.evaluate import evaluate
from ttfkit.policies import load
torch.set_num_threads(1)


class Sum:
    differentiable = True
    def __init__(self, a, b, w):
        self.a, self.b, self.w = a, b, w
    def __call__(self, x, ctx):
        return self.a(x, ctx) + self.w * self.b(x, ctx)


class TopK:
    differentiable = False
    def __init__(self, critic, coh, k):
        self.critic, self.coh, self.k = critic, coh, k
    def __call__(self, x, ctx):
        q, c = self.critic(x, ctx), self.coh(x, ctx)
        keep = torch.zeros_like(q, dtype=torch.bool)
        keep[q.topk(min(self.k, len(q))).indices] = True
        return torch.where(keep, c, torch.full_like(c, -1e9)) + 1e-6 * q


def main():
    ckpt, env, var, n, eps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    seed = int(sys.argv[6]) if len(sys.argv) > 6 else 330000
    assert seed != 100000, "dev script: evaluation seeds are not for development"
    policy = load(ckpt)
    critic = lambda: make_reward("critic", critic=f"{ckpt}/critic", policy=policy, env_id=env)
    coh = make_reward("coherence")
    if var == "none":
        reward = None
    elif var == "coherence":
        reward = coh
    elif var == "critic":
        reward = critic()
    elif var.startswith("critic+coherence:"):
        reward = Sum(critic(), coh, float(var.split(":")[1]))
    elif var.startswith("topk:"):
        reward = TopK(critic(), coh, int(var.split(":")[1]))
    cfg = AlignConfig(method="none") if reward is None else AlignConfig(method="best-of-n", particles=n)
    aligned = AlignedPolicy(policy, reward, cfg, seed_base=0)
    t = time.time()
    res = evaluate(aligned, env, eps, seed=seed, n_envs=8)
    print(json.dumps({"ckpt": ckpt, "variant": var, "n": n, "success": int(sum(res.successes)), "episodes": eps,
                      "seed": seed, "wall_s": round(time.time() - t, 1)}), flush=True)


if __name__ == "__main__":
    main()
