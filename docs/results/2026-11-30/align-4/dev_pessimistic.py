"""align-4 development check: best-of-8 on a pessimistic critic score, mean - K * std over the ensemble members.

The refit critic is an ensemble of 5 members fitted on bootstrap resamples of the episodes. Best-of-N takes
the candidate with the highest mean logit, so it favours candidates on which the members disagree and one
of them extrapolates upwards. This scores each candidate by the members' mean logit minus K times their
standard deviation (the critic and its data are the refit critic's own, unchanged) and runs best-of-8 on the
development seeds 330000+. Compare with CKPT/align_dev/best-of-n-critic-refit-x8.json (K = 0):

    MUJOCO_GL=egl python docs/results/2026-11-30/align-4/dev_pessimistic.py
"""
import importlib.util
import json
from pathlib import Path

import torch
from torch import nn

# align-3's job runner: its imports set MUJOCO_GL and one torch thread; ROOT, ENVS and the loaders
_spec = importlib.util.spec_from_file_location("align3_jobs", Path(__file__).parents[1] / "align-3" / "jobs.py")
jobs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(jobs)
from ttfkit.align.critic import load_critic  # noqa: E402

ROOT = jobs.ROOT
ENVS = {k: jobs.ENVS[k] for k in ("stick10", "shelf10")}
K = 1.0


class PessimisticCritic:
    """r = log sigmoid(mean_m Q_m - K * std_m Q_m) over the ensemble members' logits."""

    differentiable = True

    def __init__(self, critic, policy, k: float) -> None:
        self.critic, self.policy, self.k = critic, policy, k

    def __call__(self, x, cond=None):
        c = cond["cond"].expand(x.shape[0], -1)
        q = self.critic.member_logits(c, self.policy._normalize(self.policy.config.action_key, x))  # (M, B)
        return nn.functional.logsigmoid(q.mean(0) - self.k * q.std(0))


def main() -> None:
    for seed in range(3):
        for setting, env in ENVS.items():
            ckpt = ROOT / setting / "runs" / f"adamw_lr0.001_seed{seed}" / "checkpoints" / "step_001500"
            path = ckpt / "align_dev" / f"best-of-n-critic-refit-lcb{K:g}-x8.json"
            if path.exists():
                continue
            policy = jobs.load(ckpt).eval()
            reward = PessimisticCritic(load_critic(ckpt / "critic_refit"), policy, K)
            aligned = jobs.AlignedPolicy(policy, reward, jobs.method_config("best-of-n", 8, 10),
                                         generator=torch.Generator().manual_seed(0))
            res = jobs.evaluate(aligned, env, 50, seed=330000, n_envs=8, workers=0)
            full = json.loads((ckpt / "align_dev" / "best-of-n-critic-refit-x8.json").read_text())
            base = json.loads((ckpt / "align_dev" / "none-base-x1.json").read_text())
            out = {"eval": json.loads(res.to_json()), "k": K,
                   "mean_critic_successes": int(sum(full["eval"]["successes"])),
                   "base_successes": int(sum(base["eval"]["successes"]))}
            path.write_text(json.dumps(out, indent=2))
            print(json.dumps({"setting": setting, "seed": seed, "lcb": int(sum(res.successes)),
                              "mean": out["mean_critic_successes"], "base": out["base_successes"]}), flush=True)


if __name__ == "__main__":
    main()
