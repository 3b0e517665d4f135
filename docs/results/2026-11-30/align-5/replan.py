"""align-5 (issue 12): re-plan every 4 steps instead of 8, at the same NFE per env step.

Why: section 2 of the README finds that one best-of-N decision moves the success-from-here probability by
very little, and that the closed-loop gain is the sum of such edges over an episode's ~19 decisions. If so,
twice the decisions should gain more than twice the candidates per decision: best-of-4 every 4 steps
(40 NFE per chunk, 10 NFE per env step) against align-3's best-of-8 every 8 steps (80 NFE per chunk, 10 per
env step), with the same refit critic. The base policy re-planning every 4 steps is run too, so that the
gain of re-planning alone is visible.

Rule, fixed before any result: on the development seeds 330000-330049, the 6 checkpoints of stick-pull 10 and
shelf-place 10; if best-of-4 at Ta = 4 has more pooled successes than best-of-8 at Ta = 8 (align-3: 176 of 300),
it goes to the evaluation seeds, else it stops here.

    MUJOCO_GL=egl python docs/results/2026-11-30/align-5/replan.py dev      # then, if the rule says so: eval
    MUJOCO_GL=egl python docs/results/2026-11-30/align-5/replan.py eval peg5 # the third setting, for the table
    python docs/results/2026-11-30/align-5/replan.py report                # pooled table with intervals
"""
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

import ttfkit.envs  # noqa: F401
from ttfkit.align.policy import AlignedPolicy, AlignConfig
from ttfkit.align.rewards import make_reward
from ttfkit.envs.evaluate import evaluate
from ttfkit.policies import load
from ttfkit.scripts.gap_align import method_config

ROOT = Path("outputs/align")
ENVS = {"stick10": "ttfkit/metaworld-stick-pull-v3", "shelf10": "ttfkit/metaworld-shelf-place-v3"}
MORE = {"peg5": "ttfkit/metaworld-peg-insert-side-v3"}  # measured on evaluation seeds after the rule: `eval peg5`
SEEDS = {"eval": 100000, "dev": 330000}
ACTION_STEPS = 4


def result_path(setting, seed, method, split):
    ckpt = ROOT / setting / "runs" / f"adamw_lr0.001_seed{seed}" / "checkpoints" / "step_001500"
    return ckpt, ckpt / f"align_{split}_ta{ACTION_STEPS}" / f"{method}.json"


def run(setting, seed, method, split):
    ckpt, path = result_path(setting, seed, method, split)
    if path.exists():
        return json.loads(path.read_text())["summary"]
    policy = load(ckpt).eval()
    policy.config = dataclasses.replace(policy.config, n_action_steps=ACTION_STEPS)
    if method == "none":
        reward, config = None, AlignConfig(method="none")
    else:
        reward = make_reward("critic", critic=str(ckpt / "critic_refit"), policy=policy,
                             env_id={**ENVS, **MORE}[setting])
        config = method_config("best-of-n", 4, policy.config.num_steps)
    aligned = AlignedPolicy(policy, reward, config, generator=torch.Generator().manual_seed(0))
    t = time.perf_counter()
    res = evaluate(aligned, {**ENVS, **MORE}[setting], 50, seed=SEEDS[split], n_envs=8, workers=0)
    wall = time.perf_counter() - t
    summary = {"setting": setting, "seed": seed, "method": method, "split": split, "n_action_steps": ACTION_STEPS,
               "success": int(sum(res.successes)), "episodes": 50, "wall_s": round(wall, 1),
               "nfe_per_chunk": aligned.summary().get("nfe_per_chunk")}
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"summary": summary, "eval": json.loads(res.to_json()),
                               "align": {**aligned.summary(), "config": aligned.config_dict}}, indent=2))
    tmp.replace(path)
    return summary


def main(split, settings=tuple(ENVS)):
    torch.set_num_threads(1)
    total = {}
    for method in ("best-of-4-critic_refit", "none"):
        for setting in settings:
            for seed in range(3):
                s = run(setting, seed, "none" if method == "none" else method, split)
                total[method] = total.get(method, 0) + s["success"]
                print(json.dumps(s), flush=True)
    print(json.dumps({"split": split, "settings": list(settings), "pooled": total}), flush=True)


def report():
    """Pooled eval-seed table: the new Ta = 4 cells against align-3's Ta = 8 cells (pooled counts of ../align-3)."""
    from ttfkit.envs.evaluate import wilson_interval
    from ttfkit.scripts.gap_report import newcombe_interval

    ta8 = {"stick10": {"base, Ta 8": 92, "best-of-8 refit critic, Ta 8": 111},
           "shelf10": {"base, Ta 8": 60, "best-of-8 refit critic, Ta 8": 76},
           "peg5": {"base, Ta 8": 65, "best-of-8 refit critic, Ta 8": 71}}
    done = [s for s in ta8 if all(result_path(s, k, m, "eval")[1].exists() for k in range(3)
                                  for m in ("none", "best-of-4-critic_refit"))]
    for setting in done:
        cells = dict(ta8[setting])
        for method, name in (("none", "base, Ta 4"), ("best-of-4-critic_refit", "best-of-4 refit critic, Ta 4")):
            paths = [result_path(setting, seed, method, "eval")[1] for seed in range(3)]
            cells[name] = sum(json.loads(p.read_text())["summary"]["success"] for p in paths)  # cached runs only
        print(f"### {setting} (eval seeds 100000-100049, 3 training seeds, 150 episodes per cell)")
        print("| policy | success | Wilson 95% | vs base Ta 8 [Newcombe 95%] | vs base Ta 4 [Newcombe 95%] |")
        print("|---|---|---|---|---|")
        stats = {k: (v / 150, *wilson_interval(v, 150)) for k, v in cells.items()}
        for name, (p, lo, hi) in stats.items():
            diffs = []
            for ref in ("base, Ta 8", "base, Ta 4"):
                d_lo, d_hi = newcombe_interval(stats[name], stats[ref])
                diffs.append(f"{100 * (p - stats[ref][0]):+.0f} [{100 * d_lo:+.0f}, {100 * d_hi:+.0f}]")
            print(f"| {name} | {cells[name]}/150 = {100 * p:.0f}% | [{100 * lo:.0f}, {100 * hi:.0f}] | "
                  f"{diffs[0]} | {diffs[1]} |")
        print()


if __name__ == "__main__":
    report() if sys.argv[1] == "report" else main(sys.argv[1], tuple(sys.argv[2:]) or tuple(ENVS))
