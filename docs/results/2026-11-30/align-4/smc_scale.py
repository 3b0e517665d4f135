"""align-4: SMC's critic-reward scale (inverse temperature) chosen on development seeds, then evaluated.

The refit critic is sharp: on stick-pull the chunks best-of-8 picked had a mean critic reward of -234 nats
(log P(success)), so at scale 1 SMC's weights exp(r) are degenerate (one particle takes all) wherever the
critic extrapolates. This runs SMC 8x (72 NFE/chunk, as in align-3) with the reward scaled by s:

    MUJOCO_GL=egl python docs/results/2026-11-30/align-4/smc_scale.py dev      # s in SCALES, seed 0 of each setting
    MUJOCO_GL=egl python docs/results/2026-11-30/align-4/smc_scale.py eval S   # chosen s, all 9 checkpoints

Development seeds 330000+ (never the evaluation seeds 100000+); results cached as
CKPT/align_dev/smc-critic-refit-s<S>-x8.json and CKPT/align_extra/smc-critic-refit-s<S>-x8.json.
"""
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

# align-3's job runner: its imports set MUJOCO_GL and one torch thread; ROOT, ENVS, SEEDS and the loaders
_spec = importlib.util.spec_from_file_location("align3_jobs", Path(__file__).parents[1] / "align-3" / "jobs.py")
jobs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(jobs)
ROOT, ENVS, SEEDS = jobs.ROOT, jobs.ENVS, jobs.SEEDS
AlignedPolicy, make_reward, evaluate, load, method_config = (jobs.AlignedPolicy, jobs.make_reward, jobs.evaluate,
                                                              jobs.load, jobs.method_config)
SCALES = (1.0, 0.1, 10.0)  # 1: align-3 SMC's scale (evaluated there, not on dev seeds)


def run(setting: str, seed: int, scale: float, split: str) -> None:
    ckpt = ROOT / setting / "runs" / f"adamw_lr0.001_seed{seed}" / "checkpoints" / "step_001500"
    path = ckpt / ("align_extra" if split == "eval" else "align_dev") / f"smc-critic-refit-s{scale:g}-x8.json"
    if path.exists():
        return
    policy = load(ckpt).eval()
    reward = make_reward("critic", critic=str(ckpt / "critic_refit"), policy=policy, env_id=ENVS[setting],
                         scale=scale)
    aligned = AlignedPolicy(policy, reward, method_config("smc", 8, policy.config.num_steps),
                            generator=torch.Generator().manual_seed(0))
    t = time.perf_counter()
    res = evaluate(aligned, ENVS[setting], 50, seed=SEEDS[split], n_envs=8, workers=0)
    wall = time.perf_counter() - t
    out = {"eval": json.loads(res.to_json()), "align": {**aligned.summary(), "config": aligned.config_dict,
                                                         "critic": "critic_refit", "scale": scale,
                                                         "wall_s_per_episode": wall / 50}}
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2))
    tmp.replace(path)
    print(json.dumps({"setting": setting, "seed": seed, "scale": scale, "split": split,
                      "success": int(sum(res.successes)), "episodes": 50, "wall_s": round(wall, 1)}), flush=True)


def main() -> int:
    if sys.argv[1] == "dev":
        for scale in SCALES:
            for setting in ENVS:
                run(setting, 0, scale, "dev")
    else:
        for seed in range(3):
            for setting in ENVS:
                run(setting, seed, float(sys.argv[2]), "eval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
