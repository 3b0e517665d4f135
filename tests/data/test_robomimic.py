"""robomimic HDF5 importer on a file built here with h5py."""

import json

import h5py
import numpy as np
import pytest

from ttfkit.data import ReplayBuffer, import_robomimic

ENV_ARGS = {"env_name": "Lift", "type": 1, "env_kwargs": {"control_freq": 20}}


def _write_robomimic(path, n_demos=12, seed=0):
    """robomimic layout; demos written in a shuffled order, with lengths that identify them."""
    rng = np.random.default_rng(seed)
    demos = {}
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps(ENV_ARGS)
        for i in rng.permutation(n_demos):
            n = 3 + int(i)
            demo = {
                "obs": {"robot0_eef_pos": rng.normal(size=(n, 3)),  # float64 as robomimic stores
                        "object": rng.normal(size=(n, 10)),
                        "agentview_image": rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)},
                "actions": rng.uniform(-1, 1, size=(n, 7)),
                "rewards": (np.arange(n) == n - 1).astype(np.float64),
                "dones": (np.arange(n) == n - 1).astype(np.int64),
            }
            g = data.create_group(f"demo_{i}")
            g.attrs["num_samples"] = n
            for k, v in demo["obs"].items():
                g.create_dataset(f"obs/{k}", data=v)
                g.create_dataset(f"next_obs/{k}", data=v)
            for k in ("actions", "rewards", "dones"):
                g.create_dataset(k, data=demo[k])
            g.create_dataset("states", data=rng.normal(size=(n, 4)))
            demos[int(i)] = demo
        data.attrs["total"] = sum(len(d["actions"]) for d in demos.values())
        f.create_group("mask").create_dataset("train", data=np.array([b"demo_0"]))
    return demos


def test_import_order_values_and_attrs(tmp_path):
    h5 = tmp_path / "lift.hdf5"
    demos = _write_robomimic(h5)
    buf = import_robomimic(h5, tmp_path / "lift.zarr")
    assert buf.n_episodes == 12
    np.testing.assert_array_equal(buf.episode_lengths, [3 + i for i in range(12)])  # demo_10 > 9
    assert buf.attrs["env_args"] == ENV_ARGS
    assert buf.attrs["source"] == "robomimic"
    assert buf.attrs["demo_names"] == [f"demo_{i}" for i in range(12)]
    assert buf.keys() == ["action", "agentview_image", "done", "object", "reward",
                          "robot0_eef_pos"]
    for i in (0, 9, 10, 11):
        ep = buf.get_episode(i)
        np.testing.assert_array_equal(ep["action"], demos[i]["actions"].astype(np.float32))
        np.testing.assert_array_equal(ep["object"], demos[i]["obs"]["object"].astype(np.float32))
        np.testing.assert_array_equal(ep["agentview_image"], demos[i]["obs"]["agentview_image"])
        np.testing.assert_array_equal(ep["reward"], demos[i]["rewards"].astype(np.float32))
        np.testing.assert_array_equal(ep["done"], demos[i]["dones"])
    assert buf["action"].dtype == np.float32 and buf["agentview_image"].dtype == np.uint8
    assert buf["done"].dtype == np.uint8


def test_obs_keys_subset_and_errors(tmp_path):
    h5 = tmp_path / "lift.hdf5"
    _write_robomimic(h5, n_demos=3)
    buf = import_robomimic(h5, tmp_path / "a.zarr", obs_keys=["object"])
    assert buf.keys() == ["action", "done", "object", "reward"]
    with pytest.raises(FileExistsError, match=r"a\.zarr"):
        import_robomimic(h5, tmp_path / "a.zarr")
    with pytest.raises(KeyError, match=r"lift\.hdf5.*data/demo_0/obs has no key 'joint_pos'"):
        import_robomimic(h5, tmp_path / "b.zarr", obs_keys=["joint_pos"])
    assert not (tmp_path / "b.zarr").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zarr", "lift.hdf5"]  # no temp left
    assert ReplayBuffer.open(import_robomimic(h5, tmp_path / "a.zarr", overwrite=True).path
                             ).n_episodes == 3
    with h5py.File(tmp_path / "empty.hdf5", "w") as f:
        f.create_group("other")
    with pytest.raises(KeyError, match=r"empty\.hdf5.*'data'"):
        import_robomimic(tmp_path / "empty.hdf5", tmp_path / "c.zarr")
