"""align-4 development check: SMC 8x whose final chunk is the particle with the highest critic reward.

SMC's output is drawn from its final importance weights exp(r - V_prev): right for sampling p·exp(r), but with a
one-sample value estimate V_prev the draw favours particles whose value was underestimated, not the best chunk.
`AlignConfig(smc_final="max")` keeps SMC's steering (the same 72 NFE per chunk) and picks the final particle
with the highest reward, as best-of-N does. Development seeds 330000+, all 9 checkpoints; compare with
CKPT/align_dev/best-of-n-critic-refit-x8.json (80 NFE per chunk):

    MUJOCO_GL=egl python docs/results/2026-11-30/align-4/dev_smc_max.py [eval]
"""
import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import torch

# align-3's job runner: its imports set MUJOCO_GL and one torch thread; ROOT, ENVS, SEEDS, ALL and the loaders
_spec = importlib.util.spec_from_file_location("align3_jobs", Path(__file__).parents[1] / "align-3" / "jobs.py")
jobs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(jobs)


def run(setting: str, seed: int, split: str) -> None:
    ckpt = jobs.ROOT / setting / "runs" / f"adamw_lr0.001_seed{seed}" / "checkpoints" / "step_001500"
    path = ckpt / ("align_extra" if split == "eval" else "align_dev") / "smc-max-critic-refit-x8.json"
    if path.exists():
        return
    policy = jobs.load(ckpt).eval()
    reward = jobs.make_reward("critic", critic=str(ckpt / "critic_refit"), policy=policy, env_id=jobs.ENVS[setting])
    config = dataclasses.replace(jobs.method_config("smc", 8, policy.config.num_steps), smc_final="max")
    aligned = jobs.AlignedPolicy(policy, reward, config, generator=torch.Generator().manual_seed(0))
    res = jobs.evaluate(aligned, jobs.ENVS[setting], 50, seed=jobs.SEEDS[split], n_envs=8, workers=0)
    out = {"eval": json.loads(res.to_json()), "align": {**aligned.summary(), "config": aligned.config_dict,
                                                         "critic": "critic_refit"}}
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps({"setting": setting, "seed": seed, "split": split, "success": int(sum(res.successes)),
                      "nfe_per_chunk": aligned.summary().get("nfe_per_chunk")}), flush=True)


if __name__ == "__main__":
    split = sys.argv[1] if len(sys.argv) > 1 else "dev"
    for setting, seed in jobs.ALL:
        run(setting, seed, split)
