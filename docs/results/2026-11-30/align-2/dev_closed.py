"""Dev closed-loop check (dev seeds 330000+, never evaluation seeds): base vs best-of-N with a reward."""
import sys, time, json, torch
import ttfkit.envs  # noqa
from ttfkit.policies import load
from ttfkit.align.policy import AlignConfig, AlignedPolicy
from ttfkit.envs.evaluate import evaluate
torch.set_num_threads(1)
class Consensus:
    """r_i = log mean_j exp(-|x_i - x_j|^2 / (2 h^2)), h = median pairwise distance."""
    differentiable = False
    def __call__(self, x, ctx):
        f = x.reshape(x.shape[0], -1)
        d2 = torch.cdist(f, f) ** 2
        h2 = d2[d2 > 0].median() if (d2 > 0).any() else torch.tensor(1.0)
        return torch.logsumexp(-d2 / (2 * h2), 1)

def main():
    ckpt, env, rname, n, eps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    seed = int(sys.argv[6]) if len(sys.argv) > 6 else 330000
    policy = load(ckpt)
    
    if rname == "none":
        reward, cfg = None, AlignConfig(method="none")
    elif rname == "consensus":
        reward, cfg = Consensus(), AlignConfig(method="best-of-n", particles=n)
    elif rname.startswith("pess:"):
        from ttfkit.align.critic import load_critic
        import torch.nn.functional as F
        cr = load_critic(rname[5:])
        from ttfkit.align.model_critic import policy_state
        class Pess:
            def __call__(self, x, ctx):
                s = policy_state(policy, {k: v[None] for k, v in ctx["obs"].items()}).expand(x.shape[0], -1)
                m = cr.member_logits(s, policy._normalize("action", x))
                return F.logsigmoid(m.mean(0) - m.std(0))
        reward, cfg = Pess(), AlignConfig(method="best-of-n", particles=n)
    else:
        from ttfkit.align.critic import CriticReward
        reward, cfg = CriticReward(rname, policy, env_id=env), AlignConfig(method="best-of-n", particles=n)
    aligned = AlignedPolicy(policy, reward, cfg, seed_base=0)
    t = time.time()
    res = evaluate(aligned, env, eps, seed=seed, n_envs=8)
    if seed == 100000 and rname not in ("none", "consensus") and not rname.startswith("pess:"):
        # evaluation seeds: cache in the gap_align format for make_tables.py
        from pathlib import Path
        tag = {"critic": "critic-blocks"}.get(Path(rname).name, Path(rname).name.replace("_", "-"))
        out = Path(ckpt) / "align_extra" / f"best-of-n-{tag}-x{n}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"eval": json.loads(res.to_json()), "align": {
            **aligned.summary(), "config": aligned.config_dict, "wall_s_per_episode": (time.time() - t) / eps}}, indent=2))
    print(json.dumps({"ckpt": ckpt, "reward": rname, "n": n, "success": int(sum(res.successes)), "episodes": eps,
                      "seed": seed, "wall_s": round(time.time() - t, 1)}), flush=True)

if __name__ == '__main__':
    main()
