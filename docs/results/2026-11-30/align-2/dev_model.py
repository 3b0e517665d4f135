"""Dev: fit chunk and model critics on 100 base rollouts (seeds 300000+), held-out AUC."""
import sys, time, torch
from safetensors.torch import save_file
import ttfkit.envs  # noqa
from ttfkit.policies import load
from ttfkit.align import critic as C
def main():
    torch.set_num_threads(1)
    ckpt, env, out = sys.argv[1], sys.argv[2], sys.argv[3]
    policy = load(ckpt)
    t = time.time()
    data = C.collect_critic_data(policy, env, 100, seed=300000, n_envs=8); data.pop("result")
    print("rollouts", time.time() - t, len(data["success"]), flush=True)
    save_file({k: v.contiguous() for k, v in data.items()}, out + "/data.safetensors")
    gen = torch.Generator().manual_seed(0)
    tr, he = C.episode_split(data["episode"], 0.25, generator=gen)
    rows = lambda m: {k: v[m] for k, v in data.items()}
    pc = policy.config
    for kind in ["model", "chunk"]:
        t = time.time()
        cr = C.fit_critic(rows(tr), horizon=pc.horizon, action_dim=pc.action_dim, steps=1000, members=5, kind=kind,
                          n_exec=pc.n_action_steps, generator=torch.Generator().manual_seed(1))
        q = C.critic_quality(cr, rows(he))
        print(kind, "AUC", round(q["auc"], 3), "Brier", round(q["brier"], 3), "fit_s", round(time.time() - t), flush=True)
        cr = C.fit_critic(data, horizon=pc.horizon, action_dim=pc.action_dim, steps=1000, members=5, kind=kind,
                          n_exec=pc.n_action_steps, generator=torch.Generator().manual_seed(1))
        cr.meta.update(env_id=env, policy_fingerprint=C.policy_fingerprint(policy))
        C.save_critic(cr, f"{out}/{kind}")
if __name__ == "__main__":
    main()
