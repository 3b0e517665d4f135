"""`ttf data info` and `ttf data import-robomimic` through the real dispatcher (scripts.cli.main)."""

import json
import re

import h5py
import numpy as np
import pytest

from ttfkit.data import ReplayBuffer
from ttfkit.scripts import cli
from ttfkit.scripts import data as data_cli


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(7)
    buf = ReplayBuffer.create(tmp_path / "info.zarr", attrs={"env_id": "ttfkit/fetch-push-v4"})
    for n in (4, 11, 6):
        buf.add_episode({
            "agent_pos": rng.normal(size=(n, 3)).astype(np.float32) * 10,
            "action": rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
            "pixels": rng.integers(3, 250, size=(n, 5, 5, 3), dtype=np.uint8),
        })
    return ReplayBuffer.open(buf.path)


def test_data_info_prints_the_store_numbers(store, capsys):
    assert cli.main(["data", "info", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^episodes: 3$", out, re.M)
    assert re.search(r"^steps: 21$", out, re.M)
    m = re.search(r"episode length: min (\d+) mean ([\d.]+) max (\d+)", out)
    assert (int(m[1]), float(m[2]), int(m[3])) == (4, 7.0, 11)
    for key in store.keys():
        x = store[key][:]
        m = re.search(rf"^\s+{key}\s+shape \(([\d, ]+)\)\s+dtype (\w+)\s+min (\S+)\s+max (\S+)$",
                      out, re.M)
        assert m, f"no line for {key} in:\n{out}"
        assert tuple(int(s) for s in m[1].split(",") if s.strip()) == x.shape
        assert m[2] == str(x.dtype)
        assert float(m[3]) == pytest.approx(float(x.min()), rel=1e-5)
        assert float(m[4]) == pytest.approx(float(x.max()), rel=1e-5)
    assert "ttfkit/fetch-push-v4" in out


def test_data_info_json(store, capsys):
    assert cli.main(["data", "info", str(store.path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 3 and info["steps"] == 21
    assert info["episode_length"] == {"min": 4, "mean": 7.0, "max": 11}
    act = store["action"][:]
    assert info["keys"]["action"]["min"] == pytest.approx(float(act.min()))
    assert info["keys"]["pixels"]["shape"] == [21, 5, 5, 3]


def test_data_info_ignores_interrupted_tail(store, capsys):
    import zarr

    root = zarr.open_group(str(store.path), mode="r+")
    root["data/action"].append(np.full((3, 2), 99.0, np.float32))
    assert cli.main(["data", "info", str(store.path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["steps"] == 21 and info["keys"]["action"]["max"] <= 1.0


def test_data_import_robomimic(tmp_path, capsys):
    h5 = tmp_path / "can.hdf5"
    with h5py.File(h5, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "PickPlaceCan"})
        for i in (2, 10, 1):
            g = data.create_group(f"demo_{i}")
            g.create_dataset("obs/eef", data=np.full((i + 1, 3), float(i)))
            g.create_dataset("obs/gripper", data=np.zeros((i + 1, 2)))
            g.create_dataset("actions", data=np.full((i + 1, 7), i / 10))
            g.create_dataset("rewards", data=np.zeros(i + 1))
            g.create_dataset("dones", data=np.zeros(i + 1, dtype=np.int64))
    out = tmp_path / "can.zarr"
    assert cli.main(["data", "import-robomimic", str(h5), str(out), "--obs-keys", "eef"]) == 0
    assert "3 episodes" in capsys.readouterr().out
    buf = ReplayBuffer.open(out)
    np.testing.assert_array_equal(buf.episode_lengths, [2, 3, 11])
    np.testing.assert_array_equal(buf["eef"][:, 0], np.repeat([1.0, 2.0, 10.0], [2, 3, 11]))
    assert buf.keys() == ["action", "done", "eef", "reward"]
    assert buf.attrs["env_args"] == {"env_name": "PickPlaceCan"}
    assert cli.main(["data", "import-robomimic", str(h5), str(out)]) == 2  # the CLI's error path
    assert capsys.readouterr().err.startswith(f"ttf data: error: {out}: already exists")
    with pytest.raises(FileExistsError):  # --debug shows the exception itself
        cli.main(["data", "import-robomimic", str(h5), str(out), "--debug"])


def test_data_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["data", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in data_cli.COMMANDS:
        assert name in out


def test_command_table_extension_and_unavailable_target(monkeypatch, capsys, tmp_path):
    """A new table line is enough to add a command; one whose module is missing reports it."""
    monkeypatch.setitem(data_cli.COMMANDS, "import-nothing",
                        ("ttfkit.scripts.no_such_module", "an importer whose module is missing"))
    monkeypatch.setitem(data_cli.COMMANDS, "info-again", ("ttfkit.scripts.data:INFO", "alias"))
    with pytest.raises(SystemExit):
        cli.main(["data", "--help"])
    assert "import-nothing" in capsys.readouterr().out
    assert cli.main(["data", "import-nothing"]) == 1
    assert "cannot import ttfkit.scripts.no_such_module" in capsys.readouterr().err
    ReplayBuffer.create(tmp_path / "e.zarr")
    assert cli.main(["data", "info-again", str(tmp_path / "e.zarr")]) == 0
    assert "episodes: 0" in capsys.readouterr().out
