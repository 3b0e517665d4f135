"""align-3 job runner: aligned evaluations of the 9 base checkpoints, claimed through lock folders so that
two runners can share the list (run from the repository root):

    MUJOCO_GL=egl python docs/results/2026-11-30/align-3/jobs.py      # as many runners as cores

Each job is (setting, training seed, critic folder, method, budget, seeds). Budgets are spent as in
`ttf gap --align` (`ttfkit.scripts.gap_align.method_config`). Results are cached as
CKPT/align_extra/<method>-<tag>-x<N>.json (evaluation seeds 100000+) or CKPT/align_dev/... (development
seeds 330000+, used to choose the budget). 8 env slots per evaluation (results do not depend on it).
"""
import json
import os
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("MUJOCO_GL", "egl")
torch.set_num_threads(1)
import ttfkit.envs  # noqa: E402,F401
from ttfkit.align.policy import AlignConfig, AlignedPolicy  # noqa: E402
from ttfkit.align.rewards import make_reward  # noqa: E402
from ttfkit.envs.evaluate import evaluate  # noqa: E402
from ttfkit.policies import load  # noqa: E402
from ttfkit.scripts.gap_align import method_config  # noqa: E402

ROOT = Path("outputs/align")
ENVS = {"shelf10": "ttfkit/metaworld-shelf-place-v3", "stick10": "ttfkit/metaworld-stick-pull-v3",
        "peg5": "ttfkit/metaworld-peg-insert-side-v3"}
SEEDS = {"eval": 100000, "dev": 330000}
ALL = [(s, seed) for s in ("stick10", "shelf10", "peg5") for seed in range(3)]


def jobs():
    """In priority order: (1) the refit critic's best-of-N budget (4x or 8x) chosen on development seeds,
    (2) the refit critic at 4x on evaluation seeds (8x ran in align-2), (3) SMC with the rollout reward,
    (4) the rest of the refit critic's grid, then guidance and the first-fit critic's grid on seeds 1-2
    (align-2 left it open), if time remains."""
    out = [(s, seed, None, "none", 1, "dev") for s, seed in ALL]
    out += [(s, seed, "critic_refit", "best-of-n", n, "dev") for n in (4, 8) for s, seed in ALL]
    out += [(s, seed, "critic_refit", "best-of-n", 4, "eval") for s, seed in ALL]
    out += [("stick10", 0, "rollout", "smc", 4, "eval")]
    out += [(s, seed, "critic_refit", m, n, "eval") for m, n in (("best-of-n", 16), ("smc", 8)) for s, seed in ALL]
    out += [(s, seed, "critic_refit", "guidance", 8, "eval") for s, seed in ALL]
    out += [(s, seed, "critic", m, n, "eval") for m, n in (("best-of-n", 4), ("best-of-n", 16), ("guidance", 8))
            for s, seed in ALL if seed > 0 or s == "peg5"]
    return out


def result_path(ckpt, critic, method, n, split):
    if critic in ("critic", "rollout") and split == "eval":  # where `ttf gap --align` caches these
        return ckpt / "align" / f"{method}-{critic}-x{n}.json"
    tag = "base" if critic is None else critic.replace("_", "-")
    return ckpt / ("align_extra" if split == "eval" else "align_dev") / f"{method}-{tag}-x{n}.json"


def run(setting, seed, critic, method, n, split):
    ckpt = ROOT / setting / "runs" / f"adamw_lr0.001_seed{seed}" / "checkpoints" / "step_001500"
    path = result_path(ckpt, critic, method, n, split)
    if critic == "rollout":  # the simulator reference, through `ttf gap --align`'s own function
        from ttfkit.scripts.gap_align import AlignStage, align_checkpoint
        # 20 episodes: SMC's 8 look-aheads per chunk ran at ~150 s per episode on the shared cores
        r = align_checkpoint(ENVS[setting], ckpt, AlignStage(methods=(method,), reward="rollout", particles=(n,)),
                             method, n, 20, max_steps=None, device="cpu", desc=f"{setting} s{seed} {method} x{n}")
        print(json.dumps({"setting": setting, "seed": seed, "critic": critic, "method": method, "n": n,
                          "success": int(sum(r["eval"]["successes"])), "episodes": r["eval"]["n_episodes"]}),
              flush=True)
        return
    policy = load(ckpt).eval()
    if critic is None:
        reward, config = None, AlignConfig(method="none")
    else:
        reward = make_reward("critic", critic=str(ckpt / critic), policy=policy, env_id=ENVS[setting])
        config = method_config(method, n, policy.config.num_steps)
    aligned = AlignedPolicy(policy, reward, config, generator=torch.Generator().manual_seed(0))
    t = time.perf_counter()
    res = evaluate(aligned, ENVS[setting], 50, seed=SEEDS[split], n_envs=8, workers=0)
    wall = time.perf_counter() - t
    out = {"eval": json.loads(res.to_json()), "align": {**aligned.summary(), "config": aligned.config_dict,
                                                         "critic": critic, "wall_s_per_episode": wall / 50}}
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2))
    tmp.replace(path)
    print(json.dumps({"setting": setting, "seed": seed, "critic": critic, "method": method, "n": n, "split": split,
                      "success": int(sum(res.successes)), "episodes": 50, "wall_s": round(wall, 1),
                      "nfe_per_chunk": aligned.summary().get("nfe_per_chunk")}), flush=True)


def main():
    locks = ROOT / "locks3"
    locks.mkdir(exist_ok=True)
    for job in jobs():
        setting, seed, critic, method, n, split = job
        ckpt = ROOT / setting / "runs" / f"adamw_lr0.001_seed{seed}" / "checkpoints" / "step_001500"
        if result_path(ckpt, critic, method, n, split).exists():
            continue
        try:
            (locks / "-".join(map(str, job))).mkdir()
        except FileExistsError:
            continue
        run(*job)


if __name__ == "__main__":
    sys.exit(main())
