"""Fair lr selection in `ttf gap`: tuning runs and episodes disjoint from the reported ones, the pick
read back from the tuning evaluations, and only the picked lr trained on the reported seeds."""

import json

import pytest

from ttfkit.envs import EvalResult
from ttfkit.scripts.cli import main as cli_main
from ttfkit.scripts.gap import GapConfig
from ttfkit.scripts.gap_report import read_csv
from ttfkit.scripts.gap_tune import TUNE_EVAL_SEED, pick_lr


def test_pick_lr_best_checkpoint_then_mean_then_smaller_lr():
    assert pick_lr({1e-3: [(1, 0.2), (2, 0.6)], 1e-2: [(1, 0.5), (2, 0.5)]}) == 1e-3  # best checkpoint wins
    assert pick_lr({1e-3: [(1, 0.1), (2, 0.6)], 1e-2: [(1, 0.6), (2, 0.5)]}) == 1e-2  # tie: higher mean
    assert pick_lr({1e-2: [(1, 0.5)], 1e-3: [(1, 0.5)]}) == 1e-3  # full tie: the smaller lr
    with pytest.raises(ValueError, match="evaluated checkpoint"):
        pick_lr({1e-3: []})


def test_config_rejects_tuning_on_a_reported_seed_and_unknown_grids():
    with pytest.raises(ValueError, match="tune_seed"):
        GapConfig(env="e", out="o", seeds=3, tune_episodes=5, tune_seed=2)
    with pytest.raises(ValueError, match="optim_lrs"):
        GapConfig(env="e", out="o", optims=("adamw",), optim_lrs={"muon": (1e-3,)})
    assert GapConfig(env="e", out="o", optim_lrs={"adamw": [1e-2]}).lrs_for("adamw") == (1e-2,)


def test_gap_tunes_each_optimizer_then_reports_only_its_pick(tmp_path):
    out = tmp_path / "gap"
    argv = ["gap", "--env", "ttfkit/metaworld-reach-v3", "--demos", "2", "--optims", "adamw", "--lr", "1e-3",
            "--optim-lr", "adamw=1e-4,1e-2", "--tune-episodes", "2", "--tune-seed", "7", "--seeds", "1",
            "--steps", "4", "--ckpt-every", "2", "--batch", "8", "--episodes", "1", "--max-steps", "20",
            "--n-envs", "1", "--out", str(out)]
    assert cli_main(argv) == 0
    tune = json.loads((out / "tune" / "tune.json").read_text())
    table = {}
    for lr in (1e-4, 1e-2):  # --optim-lr replaced --lr for adamw
        run = out / "tune" / "runs" / f"adamw_lr{lr:g}_seed7"
        assert json.loads((run / "train_config.json").read_text())["seed"] == 7
        series = []
        for step in (2, 4):
            result = EvalResult.from_json((run / "checkpoints" / f"step_{step:06d}" / "eval_tune.json").read_text())
            assert result.seeds == (TUNE_EVAL_SEED, TUNE_EVAL_SEED + 1)  # never an evaluation seed
            series.append((step, result.success_rate))
        table[lr] = series
    assert tune["picked"] == {"adamw": pick_lr(table)}
    rows = read_csv(out / "checkpoints.csv")
    assert {(r.optimizer, r.lr, r.seed) for r in rows} == {("adamw", pick_lr(table), 0)}
    assert "tune/tune.md" in (out / "report.md").read_text()
