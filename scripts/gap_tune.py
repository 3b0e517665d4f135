"""Fair learning rates for `ttf gap`: each optimizer's lr chosen on tuning runs and tuning episodes.

    ttf gap --env ttfkit/metaworld-stick-pull-v3 --optims adamw,dopr-adamw --lr 3e-4,1e-3,3e-3,1e-2 \\
            --tune-episodes 20 --seeds 3 --episodes 50 --out outputs/stick
    ttf gap --preset dopr-study --out outputs/dopr-study     # 6 settings, GPU machine

With ``--tune-episodes N`` the study first trains one tuning run per (optimizer, lr) of the optimizer's
grid (``--lr``, or ``--optim-lr OPT=LR,LR`` for one optimizer) with training seed ``--tune-seed``
(default 1000: not one of the reported seeds 0 .. seeds-1), evaluates every checkpoint of it on N
tuning episodes (env seeds 50000 + i: disjoint from the demo seeds 0.. and from the evaluation seeds
100000 + i of the reported numbers), and picks per optimizer the lr whose best checkpoint solved the
most tuning episodes (ties: the higher mean over checkpoints, then the smaller lr). Only the picked lr
is then trained on the reported seeds and evaluated on the evaluation episodes. The tuning table is
``tune/tune.md`` and ``tune/tune.json`` (the choice; ``sweep_report --setting`` marks a setting whose
sources all have it "(tuned)").
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["TUNE_EVAL_SEED", "STUDY_PRESETS", "tune_lrs", "pick_lr"]

TUNE_EVAL_SEED = 50_000  # first env seed of tuning episodes (demos use 0.., reported evaluations 100000..)

# The study of issue 18, for a GPU machine (not run on the 2-core CPU machine): 6 settings spanning task
# difficulty, demo count (5, 10, 25), DART demo noise and backbone (MLP, U-Net), each optimizer's lr
# tuned on 20 tuning episodes of one tuning run per lr, then 3 seeds x 50 evaluation episodes; the Muon
# pair on two settings.
_GRID = (3e-4, 1e-3, 3e-3, 1e-2)
_COMMON = dict(optims=("adamw", "dopr-adamw"), lrs=_GRID, seeds=3, steps=1500, ckpt_every=500, batch=256,
               backbone="mlp", eval_episodes=50, tune_episodes=20)
STUDY_PRESETS: dict[str, list[dict]] = {
    "dopr-study": [
        dict(_COMMON, name="stick-pull-10", env="ttfkit/metaworld-stick-pull-v3", demos=10,
             optims=("adamw", "dopr-adamw", "muon", "dopr-muon")),
        dict(_COMMON, name="shelf-place-10", env="ttfkit/metaworld-shelf-place-v3", demos=10,
             optims=("adamw", "dopr-adamw", "muon", "dopr-muon")),
        dict(_COMMON, name="peg-insert-side-5", env="ttfkit/metaworld-peg-insert-side-v3", demos=5),
        dict(_COMMON, name="peg-insert-side-25", env="ttfkit/metaworld-peg-insert-side-v3", demos=25),
        dict(_COMMON, name="shelf-place-10-noise", env="ttfkit/metaworld-shelf-place-v3", demos=10, demo_noise=0.1),
        dict(_COMMON, name="stick-pull-10-unet", env="ttfkit/metaworld-stick-pull-v3", demos=10, backbone="unet",
             steps=5000, ckpt_every=1000),
    ],
}


def tune_lrs(cfg, dataset: str) -> dict[str, tuple[float]]:
    """Run (or resume) the tuning runs of ``cfg`` (a GapConfig) and return {optimizer: (picked lr,)}."""
    from ttfkit.policies.checkpoint import read_config
    from ttfkit.scripts.gap import _evaluate_cached, _train_run

    out = Path(cfg.out) / "tune"
    table: dict[str, dict[float, list[tuple[int, float]]]] = {}
    grid = [(opt, lr) for opt in cfg.optims for lr in cfg.lrs_for(opt)]
    for i, (opt, lr) in enumerate(grid):
        stage = f"[tune {i + 1}/{len(grid)}] {opt} lr={lr:g} seed={cfg.tune_seed}"
        run_dir = out / "runs" / f"{opt}_lr{lr:g}_seed{cfg.tune_seed}"
        _train_run(cfg, dataset, run_dir, opt, lr, cfg.tune_seed, stage)
        series = []
        for ckpt in sorted((run_dir / "checkpoints").glob("step_*")):
            result = _evaluate_cached(cfg, ckpt, f"{stage} eval {ckpt.name}", first_seed=TUNE_EVAL_SEED,
                                      name="eval_tune.json", episodes=cfg.tune_episodes)
            series.append((int(read_config(ckpt)["metadata"]["step"]), result.success_rate))
        table.setdefault(opt, {})[lr] = series
    picked = {opt: pick_lr(by_lr) for opt, by_lr in table.items()}
    _write_tune(out, cfg, table, picked)
    return {opt: (lr,) for opt, lr in picked.items()}


def pick_lr(by_lr: dict[float, list[tuple[int, float]]]) -> float:
    """The lr whose best checkpoint has the highest tuning success; ties: higher mean, then smaller lr.

    by_lr: {lr: [(step, success), ...]} with success in [0, 1].
    """
    if not by_lr or any(not series for series in by_lr.values()):
        raise ValueError(f"pick_lr needs at least one evaluated checkpoint per lr, got {by_lr}")
    return max(sorted(by_lr), key=lambda lr: (max(s for _, s in by_lr[lr]),
                                              sum(s for _, s in by_lr[lr]) / len(by_lr[lr]), -lr))


def _write_tune(out: Path, cfg, table: dict, picked: dict) -> None:
    lines = [f"Tuning: one run per (optimizer, lr) with training seed {cfg.tune_seed}, {cfg.tune_episodes} "
             f"episodes per checkpoint on env seeds {TUNE_EVAL_SEED}+ (disjoint from the evaluation seeds "
             f"100000+). Picked: the lr with the best checkpoint success (ties: mean over checkpoints).", "",
             "| optimizer | lr | success per checkpoint (step: success) | picked |", "|---|---|---|---|"]
    for opt, by_lr in table.items():
        for lr, series in sorted(by_lr.items()):
            cells = ", ".join(f"{step}: {s:.0%}" for step, s in series)
            lines.append(f"| {opt} | {lr:g} | {cells} | {'**yes**' if picked[opt] == lr else ''} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "tune.md").write_text("\n".join(lines) + "\n")
    payload = {"picked": picked, "tune_seed": cfg.tune_seed, "tune_episodes": cfg.tune_episodes,
               "first_episode_seed": TUNE_EVAL_SEED,
               "table": {opt: {f"{lr:g}": series for lr, series in by_lr.items()} for opt, by_lr in table.items()}}
    tmp = out / "tune.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(out / "tune.json")
