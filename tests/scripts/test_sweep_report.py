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
