"""Bad input through `ttf`: one error path (`ttf CMD: error: ...`, exit status 2, no traceback),
counts <= 0 and non-finite numbers refused, a diverging run stopped before a non-finite checkpoint,
and --overwrite refusing what ttfkit did not write."""

import h5py
import numpy as np
import pytest
import torch

from ttfkit.policies.checkpoint import read_weights
from ttfkit.scripts import cli

TRAIN = ["--batch", "8", "--horizon", "8", "--n-obs-steps", "2", "--n-action-steps", "4", "--val-fraction", "0",
         "--backbone-option", "hidden_dim=32", "--backbone-option", "n_blocks=1", "--policy-option", "num_steps=2",
         "--threads", "1", "--device", "cpu", "--no-progress"]


def _run(capsys, *argv):
    code = cli.main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize("flag,value", [("--lr", "inf"), ("--weight-decay", "nan"), ("--grad-clip", "nan"),
                                        ("--lr", "-1")])
def test_non_finite_or_negative_numbers_are_refused(capsys, store, tmp_path, flag, value):
    code, err = _run(capsys, "train", "--dataset", str(store), "--out", str(tmp_path / "r"), flag, value, *TRAIN)
    assert code == 2 and err.startswith("ttf train: error: TrainConfig: ")
    assert flag.lstrip("-").replace("-", "_") in err and value.lstrip("-") in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv", [["train", "--dataset", "x", "--out", "y", "--threads", "0"],
                                  ["train", "--dataset", "x", "--out", "y", "--threads", "-1"],
                                  ["eval", "--policy", "expert", "--env", "x", "--n-envs", "0"],
                                  ["eval", "--policy", "expert", "--env", "x", "--episodes", "0"]])
def test_zero_or_negative_counts_are_refused(capsys, argv):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    flag, value = argv[-2], argv[-1]
    assert e.value.code == 2 and f"error: {flag} must be >= 1, got {value}" in capsys.readouterr().err


def test_diverging_run_stops_naming_the_step_and_writes_no_non_finite_checkpoint(capsys, store, tmp_path):
    run = tmp_path / "r"
    code, err = _run(capsys, "train", "--dataset", str(store), "--out", str(run), "--lr", "1e30", "--warmup", "0",
                     "--steps", "20", "--ckpt-every", "1", *TRAIN)
    assert code == 2 and "ttf train: error: " in err and ": non-finite" in err
    failed = int(err.split(": step ")[1].split(":")[0])
    steps = sorted(int(p.name[5:]) for p in (run / "checkpoints").glob("step_*"))
    assert steps == list(range(1, failed))  # every step before the failing one, none after
    for p in (run / "checkpoints").glob("step_*"):
        for weights in read_weights(p):
            assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_data_info_and_verify_on_a_corrupt_store(capsys, store):
    chunk = store / "data" / "action" / "0.0"
    chunk.write_bytes(chunk.read_bytes()[:-7])
    code, err = _run(capsys, "data", "info", str(store))
    assert code == 2 and err.startswith(f"ttf data: error: {store}: data/action: cannot decode")
    assert cli.main(["data", "verify", str(store)]) == 1
    out = capsys.readouterr().out
    assert f"{store}: data/action: chunk 0 (rows 0..71) cannot be decoded" in out and "checksum" in out


def test_data_verify_accepts_a_sound_store(capsys, store):
    assert cli.main(["data", "verify", str(store)]) == 0
    assert "ok (6 episodes, 72 steps" in capsys.readouterr().out


def test_overwrite_refuses_a_folder_ttfkit_did_not_write(capsys, tmp_path):
    h5 = tmp_path / "demo.hdf5"
    with h5py.File(h5, "w") as f:
        g = f.create_group("data").create_group("demo_0")
        g.create_dataset("obs/eef", data=np.ones((3, 2)))
        g.create_dataset("actions", data=np.zeros((3, 2)))
    user = tmp_path / "my_folder"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    code, err = _run(capsys, "data", "import-robomimic", str(h5), str(user), "--overwrite")
    assert code == 2 and f"{user}: refusing to replace it: it is a folder without ttfkit's marker" in err
    assert (user / "thesis.tex").read_text() == "precious" and sorted(p.name for p in user.iterdir()) == ["thesis.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.hdf5", "my_folder"]  # no temporary left


def test_unknown_option_field_is_one_line(capsys, store, tmp_path):
    code, err = _run(capsys, "train", "--dataset", str(store), "--out", str(tmp_path / "r"), "--steps", "1",
                     "--optim-option", "no_such_field=1", *TRAIN)
    assert code == 2 and err.startswith("ttf train: error: ") and "no_such_field" in err
