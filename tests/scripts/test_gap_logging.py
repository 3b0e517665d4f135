"""`ttf gap --log tensorboard`: each run's TensorBoard files hold its training metrics and, per checkpoint,
the evaluation in checkpoints.csv, once per step after a rerun with more episodes."""

import csv

import numpy as np
import pytest

from ttfkit.scripts.cli import main as cli_main
from ttfkit.scripts.gap_report import read_csv


def _scalars(folder) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        steps = [e.step for e in acc.Scalars(tag)]
        assert len(steps) == len(set(steps)), f"{tag}: a step logged twice: {steps}"
        out[tag] = {e.step: e.value for e in acc.Scalars(tag)}
    return out


def test_gap_logs_training_and_every_checkpoints_evaluation(tmp_path):
    out = tmp_path / "gap"
    argv = ["gap", "--env", "ttfkit/metaworld-reach-v3", "--demos", "2", "--optims", "adamw", "--seeds", "1",
            "--steps", "4", "--ckpt-every", "2", "--batch", "8", "--max-steps", "30", "--n-envs", "1",
            "--log", "tensorboard", "--out", str(out)]
    assert cli_main([*argv, "--episodes", "2"]) == 0
    assert cli_main([*argv, "--episodes", "3"]) == 0  # a rerun: only evaluations change
    run = out / "runs" / "adamw_lr0.001_seed0"

    rows = {r.step: r for r in read_csv(out / "checkpoints.csv")}
    evals = _scalars(run / "tensorboard" / "eval")
    assert set(evals["eval/success"]) == set(rows) == {2, 4}
    for step, r in rows.items():
        assert evals["eval/success"][step] == pytest.approx(np.float32(r.success))
        assert evals["eval/success_ci_low"][step] == pytest.approx(np.float32(r.success_ci_low))
        assert evals["eval/episodes"][step] == 3

    train = _scalars(run / "tensorboard" / "train")
    with open(run / "metrics.csv", newline="") as f:
        metrics = {int(m["step"]): m for m in csv.DictReader(f)}
    assert set(train["train/loss"]) == set(metrics)
    assert train["train/loss"] == {s: pytest.approx(np.float32(m["train_loss"])) for s, m in metrics.items()}
    assert train["val/loss"] == {s: pytest.approx(np.float32(rows[s].val_loss)) for s in rows}
