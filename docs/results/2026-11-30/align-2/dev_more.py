"""Dev: 300 more base rollouts (seeds 300100+), merged with the first 100; fit chunk critics on 400 episodes."""
import sys, time, torch
from safetensors.torch import save_file, load_file
import ttfkit.envs  # noqa
from ttfkit.policies import load
from ttfkit.align import critic as C
def main():
    torch.set_num_threads(1)
    ckpt, env, out = sys.argv[1], sys.argv[2], sys.argv[3]
    policy = load(ckpt)
    t = time.time()
    data = C.collect_critic_data(policy, env, 300, seed=300100, n_envs=8); data.pop("result")
    print("rollouts", time.time() - t, len(data["success"]), flush=True)
    old = load_file(out + "/data.safetensors")
    data = {k: torch.cat([old[k], data[k]]) for k in old}
    save_file({k: v.contiguous() for k, v in data.items()}, out + "/data400.safetensors")
    pc = policy.config
    cr = C.fit_critic(data, horizon=pc.horizon, action_dim=pc.action_dim, steps=3000, members=5,
                      generator=torch.Generator().manual_seed(1))
    cr.meta.update(env_id=env, policy_fingerprint=C.policy_fingerprint(policy))
    C.save_critic(cr, f"{out}/chunk400")
    print("done", flush=True)
if __name__ == "__main__":
    main()
