"""The sweep summary averages seeds per (optimizer config, lr, step) and labels DoPr by its options."""

import json

import pytest

from ttfkit.scripts.gap_report import CheckpointRow, write_csv
from ttfkit.scripts.sweep_report import load_sweep, main


def _study(path, optim, options, rows):
    path.mkdir()
    (path / "gap_config.json").write_text(json.dumps({"optims": [optim], "optim_options": options}))
    write_csv([CheckpointRow(optim, seed, lr, step, 0.1, val, succ, 0.0, 1.0, 20)
               for seed, lr, step, val, succ in rows], path / "checkpoints.csv")


def test_sweep_table_and_labels(tmp_path, capsys):
    _study(tmp_path / "a", "adamw", {}, [(0, 1e-3, 500, 0.4, 0.2), (1, 1e-3, 500, 0.2, 0.4),
                                         (0, 1e-3, 1000, 0.5, 0.5), (1, 1e-3, 1000, 0.5, 0.7)])
    _study(tmp_path / "b", "dopr-adamw", {"damping": 0.1}, [(0, 3e-4, 500, 0.9, 0.0), (0, 3e-4, 1000, 0.7, 0.1)])
    curves = load_sweep([tmp_path / "a", tmp_path / "b"])
    assert set(curves) == {("adamw", 1e-3), ("dopr-adamw damping=0.1", 3e-4)}
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "out")]) == 0
    table = (tmp_path / "out" / "sweep.md").read_text()
    # adamw: mean val loss 0.3 at 500 and 0.5 at 1000; mean success 30% then 60%
    assert "| adamw | 0.001 | 2 | 0.300 | 0.500 | 60% | 60% |" in table
    assert "| dopr-adamw damping=0.1 | 0.0003 | 1 | 0.700 | 0.700 | 10% | 10% |" in table
    assert (tmp_path / "out" / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_report_is_named(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(FileNotFoundError, match="gap_config.json"):
        load_sweep([tmp_path / "x"])


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), Stat. Med. 17:873, example (a): 56/70 - 48/80, method 10: 0.0524 .. 0.3339
    from ttfkit.scripts.gap_report import wilson_interval
    from ttfkit.scripts.sweep_report import newcombe_interval

    low, high = newcombe_interval((56 / 70, *wilson_interval(56, 70)), (48 / 80, *wilson_interval(48, 80)))
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_settings_report_pairs_dopr_with_its_base_and_states_the_difference(tmp_path, capsys):
    # setting A: adamw and dopr-adamw in one directory, dopr-adamw rank=None beside them (@exact)
    _study(tmp_path / "a", "adamw", {}, [(s, 1e-3, step, 0.2, succ) for s, step, succ in
                                         [(0, 1, 0.2), (0, 2, 0.3), (1, 1, 0.4), (1, 2, 0.1)]])
    rows = [CheckpointRow("dopr-adamw", s, 1e-3, step, 0.1, 0.3, succ, 0.0, 1.0, 20)
            for s, step, succ in [(0, 1, 0.9), (0, 2, 0.8), (1, 1, 0.7), (1, 2, 1.0)]]
    (tmp_path / "exact").mkdir()
    write_csv(rows, tmp_path / "exact" / "checkpoints.csv")
    (tmp_path / "exact" / "gap_config.json").write_text(json.dumps({"optim_options": {"rank": None}}))
    argv = ["--setting", f"A={tmp_path / 'a'},{tmp_path / 'exact'}@x", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    table = (tmp_path / "out" / "settings.md").read_text()
    line = next(x for x in table.splitlines() if x.startswith("| A |"))
    # best per seed: adamw 0.3, 0.4 -> 35%; DoPr 0.9, 1.0 -> 95%; finals: adamw (0.3 + 0.1)/2, DoPr 0.9
    assert "dopr-adamw rank=None [x] vs adamw" in line and "| +60% [" in line and "| +70% [" in line
    assert line.endswith("| DoPr wins |")
    # final checkpoints with their spread over seeds: DoPr 0.8, 1.0; adamw 0.3, 0.1
    assert "| 90% ± 10% / 20% ± 10% |" in line and "(tuned)" not in line
    import csv as _csv
    record = next(_csv.DictReader(open(tmp_path / "out" / "settings.csv")))
    assert float(record["best_diff_low"]) > 0 and float(record["best_diff"]) == pytest.approx(0.6)
    assert (tmp_path / "out" / "settings.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "o")])


def test_settings_report_marks_lrs_tuned_only_when_every_source_was_tuned(tmp_path):
    rows = [(s, 1e-3, step, 0.2, 0.5) for s in (0, 1) for step in (1, 2)]
    _study(tmp_path / "base", "adamw", {}, rows)
    _study(tmp_path / "dopr", "dopr-adamw", {}, rows)
    (tmp_path / "dopr" / "tune").mkdir()
    (tmp_path / "dopr" / "tune" / "tune.json").write_text("{}")
    argv = ["--setting", f"one={tmp_path / 'base'},{tmp_path / 'dopr'}",
            "--setting", f"two={tmp_path / 'dopr' / 'checkpoints.csv'},{tmp_path / 'base'}", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "(tuned)" not in (tmp_path / "settings.md").read_text()
    (tmp_path / "base" / "tune").mkdir()
    (tmp_path / "base" / "tune" / "tune.json").write_text("{}")
    assert main(argv) == 0
    lines = [x for x in (tmp_path / "settings.md").read_text().splitlines() if x.startswith(("| one", "| two"))]
    assert len(lines) == 2 and all("0.001 / 0.001 (tuned)" in x for x in lines)
