"""align-4 development check: a critic that sees only the executed part of a chunk.

The policy plans H = 16 actions and executes the first n_action_steps = 8; the episode outcome that labels a
chunk depends on those 8 alone, so the critic's other 32 inputs can only add noise to its ranking of candidates.
This refits the refit critic's own data (CKPT/critic_refit/rollouts.safetensors, same fit settings: 5 members,
1000 steps, success labels) on chunk[:, :8] and runs best-of-8 with it on the development seeds 330000+
(compare with CKPT/align_dev/best-of-n-critic-refit-x8.json, the full-chunk critic on the same episodes):

    MUJOCO_GL=egl python docs/results/2026-11-30/align-4/dev_executed.py
"""
import importlib.util
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

# align-3's job runner: its imports set MUJOCO_GL and one torch thread; ROOT, ENVS and the loaders
_spec = importlib.util.spec_from_file_location("align3_jobs", Path(__file__).parents[1] / "align-3" / "jobs.py")
jobs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(jobs)
from ttfkit.align.critic import fit_critic  # noqa: E402

ROOT = jobs.ROOT
ENVS = {k: jobs.ENVS[k] for k in ("stick10", "shelf10")}
AlignedPolicy, evaluate, load, method_config = jobs.AlignedPolicy, jobs.evaluate, jobs.load, jobs.method_config


class ExecutedCritic:
    """r = log sigmoid(Q(cond, normalised chunk[:, :k])) (the critic reward restricted to the executed part)."""

    differentiable = True

    def __init__(self, critic, policy, k: int) -> None:
        self.critic, self.policy, self.k = critic, policy, k

    def __call__(self, x, cond=None):
        c = cond["cond"].expand(x.shape[0], -1)
        xn = self.policy._normalize(self.policy.config.action_key, x)[:, : self.k]
        return nn.functional.logsigmoid(self.critic(c, xn))


def main() -> None:
    for seed in range(3):
        for setting, env in ENVS.items():
            ckpt = ROOT / setting / "runs" / f"adamw_lr0.001_seed{seed}" / "checkpoints" / "step_001500"
            path = ckpt / "align_dev" / "best-of-n-critic-executed-x8.json"
            if path.exists():
                continue
            policy = load(ckpt).eval()
            k = policy.config.n_action_steps
            data = load_file(str(ckpt / "critic_refit" / "rollouts.safetensors"))
            data = {**data, "chunk": data["chunk"][:, :k]}
            t = time.perf_counter()
            critic = fit_critic(data, horizon=k, action_dim=policy.config.action_dim, steps=1000, members=5,
                                generator=torch.Generator().manual_seed(0))
            fit_s = time.perf_counter() - t
            aligned = AlignedPolicy(policy, ExecutedCritic(critic, policy, k), method_config("best-of-n", 8, 10),
                                    generator=torch.Generator().manual_seed(0))
            res = evaluate(aligned, env, 50, seed=330000, n_envs=8, workers=0)
            full = json.loads((ckpt / "align_dev" / "best-of-n-critic-refit-x8.json").read_text())
            base = json.loads((ckpt / "align_dev" / "none-base-x1.json").read_text())
            out = {"eval": json.loads(res.to_json()), "fit_s": fit_s, "executed_steps": k,
                   "full_chunk_critic_successes": int(sum(full["eval"]["successes"])),
                   "base_successes": int(sum(base["eval"]["successes"]))}
            path.write_text(json.dumps(out, indent=2))
            print(json.dumps({"setting": setting, "seed": seed, "executed": int(sum(res.successes)),
                              "full": out["full_chunk_critic_successes"], "base": out["base_successes"]}), flush=True)


if __name__ == "__main__":
    main()
