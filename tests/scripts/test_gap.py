"""`ttf gap` end to end at a tiny size: real demos, real training of two optimizers, real closed-loop
evaluation of every checkpoint, and a report whose numbers agree with the files it was built from."""

import csv

import pytest

from ttfkit.data import ReplayBuffer
from ttfkit.envs import EvalResult
from ttfkit.scripts.cli import main as cli_main
from ttfkit.scripts.gap_report import read_csv


def test_gap_pipeline_end_to_end(tmp_path, capsys):
    out = tmp_path / "gap"
    argv = ["gap", "--env", "ttfkit/metaworld-reach-v3", "--demos", "2", "--optims", "adamw,dopr-adamw",
            "--seeds", "1", "--steps", "6", "--ckpt-every", "3", "--batch", "8", "--episodes", "2",
            "--max-steps", "30", "--n-envs", "1", "--out", str(out)]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert str(out / "report.md") in printed and str(out / "gap.png") in printed

    rows = read_csv(out / "checkpoints.csv")
    assert sorted((r.optimizer, r.step) for r in rows) == [("adamw", 3), ("adamw", 6), ("dopr-adamw", 3),
                                                           ("dopr-adamw", 6)]
    for r in rows:
        run = out / "runs" / f"{r.optimizer}_lr{r.lr:g}_seed{r.seed}"
        result = EvalResult.from_json((run / "checkpoints" / f"step_{r.step:06d}" / "eval.json").read_text())
        assert r.episodes == 2 and r.success == result.success_rate
        assert result.seeds == (100_000, 100_001)  # the same evaluation seeds for every checkpoint
        metrics = {int(m["step"]): m for m in csv.DictReader(open(run / "metrics.csv"))}
        assert r.val_loss == pytest.approx(float(metrics[r.step]["val_loss"]))
        assert r.train_loss == pytest.approx(float(metrics[r.step]["train_loss"]))
        assert r.success_ci_low <= r.success <= r.success_ci_high

    demo_seeds = ReplayBuffer.open(out / "demos.zarr").attrs["kept_seeds"]
    assert max(demo_seeds) < 100_000  # demos never share a layout with evaluation

    report = (out / "report.md").read_text()
    assert "| adamw | 0.001 | 1 |" in report and "| dopr-adamw | 0.001 | 1 |" in report
    assert "dopr-adamw" in report.splitlines()[2]  # the headline compares DoPr with its base
    assert (out / "gap.png").read_bytes()[:4] == b"\x89PNG"

    # Resumable: a rerun trains and evaluates nothing new and reproduces the same table.
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("eval.json")}
    assert cli_main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("eval.json")} == stamp
    assert read_csv(out / "checkpoints.csv") == rows

    # More episodes later: only the missing ones run, and the merged result equals a fresh evaluation.
    from ttfkit.envs import evaluate
    from ttfkit.policies import load

    assert cli_main([*argv[:-4], "--episodes", "4", *argv[-4:]]) == 0
    ckpt = out / "runs" / "adamw_lr0.001_seed0" / "checkpoints" / "step_000006"
    extended = EvalResult.from_json((ckpt / "eval.json").read_text())
    fresh = evaluate(load(ckpt), "ttfkit/metaworld-reach-v3", 4, n_envs=1, max_steps=30)
    assert extended.seeds == fresh.seeds == (100_000, 100_001, 100_002, 100_003)
    assert extended.successes == fresh.successes and extended.returns == pytest.approx(fresh.returns)
    assert extended.lengths == fresh.lengths
    assert all(r.episodes == 4 for r in read_csv(out / "checkpoints.csv"))

    # A finished run is never silently reused under another optimizer config or other demos, and the refused
    # rerun is refused before it writes: the study's gap_config.json stays the one its results came from.
    saved = (out / "gap_config.json").read_bytes()
    with pytest.raises(ValueError, match="another config.*optim_options"):
        cli_main([*argv, "--optim-option", "weight_decay=0.1", "--debug"])
    with pytest.raises(ValueError, match="another config.*'demos': \\(2, 3\\)"):
        cli_main([*argv, "--demos", "3", "--debug"])
    assert (out / "gap_config.json").read_bytes() == saved


def test_gap_split_seed_gives_every_run_the_same_validation_episodes(tmp_path):
    import json

    out = tmp_path / "gap"
    argv = ["gap", "--env", "ttfkit/metaworld-reach-v3", "--demos", "6", "--optims", "adamw", "--seeds", "2",
            "--steps", "2", "--ckpt-every", "2", "--batch", "8", "--episodes", "1", "--max-steps", "10",
            "--n-envs", "1", "--workers", "0", "--out"]

    def val_episodes(study, seed):
        meta = study / "runs" / f"adamw_lr0.001_seed{seed}" / "checkpoints" / "step_000002" / "config.json"
        return sorted(json.loads(meta.read_text())["metadata"]["val_episodes"])

    assert cli_main([*argv, str(out / "own")]) == 0
    own = [val_episodes(out / "own", s) for s in (0, 1)]
    assert own[0] != own[1]  # by default each training seed holds out its own episodes
    assert cli_main([*argv, str(out / "shared"), "--split-seed", "1"]) == 0
    assert [val_episodes(out / "shared", s) for s in (0, 1)] == [own[1], own[1]]
    assert json.loads((out / "shared" / "gap_config.json").read_text())["split_seed"] == 1
