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


def test_ttf_eval_logs_at_the_checkpoints_step_beside_its_run(tmp_path):
    import json

    import torch

    from ttfkit.policies import make_policy

    torch.manual_seed(0)
    policy = make_policy("flow", obs_shapes={"agent_pos": (10,), "environment_state": (15,)}, action_dim=4,
                         horizon=8, n_obs_steps=2, n_action_steps=4, num_steps=2)
    ckpt = tmp_path / "run" / "checkpoints" / "step_000007"
    policy.save(ckpt, metadata={"step": 7})
    argv = ["eval", "--checkpoint", str(ckpt), "--env", "ttfkit/fetch-push-v4", "--episodes", "2", "--n-envs", "1",
            "--max-steps", "10", "--log", "tensorboard"]
    assert cli_main(argv) == 0
    data = json.loads((ckpt / "eval_fetch-push-v4.json").read_text())
    logged = _scalars(tmp_path / "run" / "tensorboard" / "eval-fetch-push-v4")
    assert logged["eval/success"] == {7: pytest.approx(sum(data["successes"]) / 2)}
    assert logged["eval/mean_return"] == {7: pytest.approx(np.float32(np.mean(data["returns"])))}
    with pytest.raises(ValueError, match="--log needs --checkpoint"):
        cli_main(["eval", "--expert", "--env", "ttfkit/fetch-push-v4", "--log", "tensorboard", "--debug"])
