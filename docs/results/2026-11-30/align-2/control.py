"""Control for the refit: 100 more *base-policy* rollouts on the refit's seeds (300100+), merged with the
critic's 100, saved as a `ttf critic --data` file (then fitted exactly as the refit critic is)."""
import sys, torch
import ttfkit.envs  # noqa
from ttfkit.policies import load
from ttfkit.align import critic as C
from ttfkit.scripts.critic import _cat, _load_data, _save_data
from pathlib import Path

def main():
    torch.set_num_threads(1)
    ckpt, env = sys.argv[1], sys.argv[2]
    policy = load(ckpt).eval()
    more = C.collect_critic_data(policy, env, 100, seed=300100, n_envs=8)
    print("base success on 300100+:", more.pop("result").n_successes, flush=True)
    _save_data(_cat(_load_data(Path(ckpt) / "critic" / "rollouts.safetensors"), more), Path(ckpt) / "base200.safetensors")

if __name__ == "__main__":
    main()
