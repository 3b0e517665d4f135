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


def _add_masks_depth(path, masks: dict[str, list[str]], depth: bool = True, seed: int = 1):
    """Replace robomimic's mask/ group and add a float depth camera (T, H, W, 1) to every demo."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "a") as f:
        del f["mask"]
        mask = f.create_group("mask")
        for key, names in masks.items():  # robomimic stores demo names as bytes
            mask.create_dataset(key, data=np.array([n.encode() for n in names]))
        if depth:
            for name, demo in f["data"].items():
                n = demo["actions"].shape[0]
                demo.create_dataset("obs/agentview_depth",
                                    data=rng.uniform(0.2, 2.5, (n, 6, 6, 1)).astype(np.float32))


def test_filter_keys_become_named_episode_lists_the_dataset_selects(tmp_path):
    from ttfkit.data import SequenceDataset

    h5 = tmp_path / "lift.hdf5"
    _write_robomimic(h5, n_demos=6)
    _add_masks_depth(h5, {"train": ["demo_5", "demo_0", "demo_2", "demo_3"],
                          "valid": ["demo_1", "demo_4"]}, depth=False)
    buf = import_robomimic(h5, tmp_path / "lift.zarr")
    assert buf.attrs["filter_keys"] == {"train": [0, 2, 3, 5], "valid": [1, 4]}
    kw = dict(horizon=2, n_obs_steps=1, n_action_steps=1, obs_keys=["object"], split="all")
    for key, want in (("train", [0, 2, 3, 5]), ("valid", [1, 4])):
        ds = SequenceDataset(buf, filter_key=key, **kw)
        np.testing.assert_array_equal(ds.episode_indices, want)
        # Windows come only from those episodes: L - 1 windows each, observations from their rows.
        assert len(ds) == sum(buf.episode_lengths[e] - 1 for e in want)
        rows = np.concatenate([buf.get_episode(e)["object"] for e in want])
        other = np.concatenate([buf.get_episode(e)["object"] for e in range(6) if e not in want])
        for i in range(len(ds)):
            x = ds[i]["obs"]["object"].numpy()[0]
            assert (rows == x).all(1).any() and not (other == x).all(1).any()
    # The split still applies inside a filter key, disjoint and covering it.
    tr = SequenceDataset(buf, filter_key="train", val_fraction=0.5, seed=3, **{**kw, "split": "train"})
    va = SequenceDataset(buf, filter_key="train", val_fraction=0.5, seed=3, **{**kw, "split": "val"})
    assert sorted([*tr.episode_indices, *va.episode_indices]) == [0, 2, 3, 5]
    with pytest.raises(KeyError, match=r"no filter key '20_percent'.*\['train', 'valid'\]"):
        SequenceDataset(buf, filter_key="20_percent", **kw)
    _add_masks_depth(h5, {"train": ["demo_0", "demo_99"]}, depth=False)
    with pytest.raises(KeyError, match=r"mask/train names demos that data/ does not hold: \['demo_99'\]"):
        import_robomimic(h5, tmp_path / "bad.zarr")


def test_states_are_optional_and_exact(tmp_path):
    h5 = tmp_path / "lift.hdf5"
    _write_robomimic(h5, n_demos=3)
    assert "states" not in import_robomimic(h5, tmp_path / "a.zarr").keys()
    buf = import_robomimic(h5, tmp_path / "b.zarr", states=True)
    with h5py.File(h5, "r") as f:
        for i in range(3):
            want = f[f"data/demo_{i}/states"][()]
            got = buf.get_episode(i)["states"]
            assert got.dtype == np.float64
            np.testing.assert_array_equal(got, want)
        del_target = "data/demo_1/states"
    with h5py.File(h5, "a") as f:
        del f[del_target]
    with pytest.raises(KeyError, match=r"data/demo_1 has no 'states'"):
        import_robomimic(h5, tmp_path / "c.zarr", states=True)
    assert import_robomimic(h5, tmp_path / "d.zarr").n_episodes == 3  # states are optional


def test_float_depth_images_import_as_float_images(tmp_path):
    from ttfkit.data import Normalizer, SequenceDataset

    h5 = tmp_path / "lift.hdf5"
    _write_robomimic(h5, n_demos=4)
    _add_masks_depth(h5, {"train": ["demo_0"]})
    buf = import_robomimic(h5, tmp_path / "d.zarr", obs_keys=["agentview_depth", "object"])
    depth = buf["agentview_depth"][: buf.n_steps]
    assert depth.dtype == np.float32 and depth.shape[1:] == (6, 6, 1)
    ds = SequenceDataset(buf, horizon=2, n_obs_steps=1, n_action_steps=1, split="all",
                         obs_keys=["agentview_depth", "object"])
    item = ds[0]["obs"]["agentview_depth"]  # (To, C, H, W), as stored (no 1/255)
    np.testing.assert_array_equal(item.numpy(), depth[:1].transpose(0, 3, 1, 2))
    norm = Normalizer.fit(buf, ["agentview_depth"], mode="minmax")
    y = norm.normalize("agentview_depth", torch_from(depth.transpose(0, 3, 1, 2)))
    assert abs(float(y.min()) + 1) < 1e-6 and abs(float(y.max()) - 1) < 1e-6  # per channel [-1, 1]


def test_cli_import_with_states_prints_filter_keys(tmp_path, capsys):
    from ttfkit.scripts.cli import main

    h5 = tmp_path / "lift.hdf5"
    _write_robomimic(h5, n_demos=3)
    _add_masks_depth(h5, {"train": ["demo_0", "demo_1"], "valid": ["demo_2"]}, depth=False)
    assert main(["data", "import-robomimic", str(h5), str(tmp_path / "s.zarr"), "--states"]) == 0
    out = capsys.readouterr().out
    assert "filter keys (episodes): {'train': 2, 'valid': 1}" in out
    assert "states" in ReplayBuffer.open(tmp_path / "s.zarr").keys()


def torch_from(x):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x))


def test_ttf_train_filter_key_trains_on_that_episode_list_only(tmp_path, caplog, capsys):
    """`ttf train --filter-key valid` windows only robomimic's "valid" demos (the trainer's count equals the
    filtered dataset's), the key reaches train_config.json, and an unknown key is an error naming it."""
    import logging

    from ttfkit.data import SequenceDataset
    from ttfkit.scripts.cli import main as cli

    h5 = tmp_path / "lift.hdf5"
    _write_robomimic(h5, n_demos=8)
    _add_masks_depth(h5, {"train": ["demo_0", "demo_2", "demo_3", "demo_5", "demo_6"],
                          "valid": ["demo_1", "demo_4", "demo_7"]}, depth=False)
    buf = import_robomimic(h5, tmp_path / "lift.zarr")
    flags = ["train", "--dataset", str(tmp_path / "lift.zarr"), "--obs-keys", "robot0_eef_pos", "object",
             "--steps", "2", "--batch", "4", "--horizon", "2", "--n-obs-steps", "1", "--n-action-steps", "1",
             "--val-fraction", "0", "--ckpt-every", "2", "--threads", "1"]
    with caplog.at_level(logging.INFO, logger="ttfkit.policies.trainer"):
        assert cli([*flags, "--filter-key", "valid", "--out", str(tmp_path / "run")]) == 0
    want = len(SequenceDataset(buf, filter_key="valid", split="train", horizon=2, n_obs_steps=1, n_action_steps=1,
                               obs_keys=["robot0_eef_pos", "object"], val_fraction=0))
    assert want == sum(buf.episode_lengths[e] - 1 for e in (1, 4, 7))
    assert f"{want} train windows" in caplog.text
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["filter_key"] == "valid"
    capsys.readouterr()
    assert cli([*flags, "--filter-key", "nope", "--out", str(tmp_path / "bad")]) == 2
    assert "no filter key 'nope'" in capsys.readouterr().err
