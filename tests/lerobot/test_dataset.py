"""zarr <-> LeRobotDataset v3.0 conversion, checked against LeRobot 0.4.4's own reader."""

import json
import numpy as np
import pytest

from ttfkit.data import ReplayBuffer
from ttfkit.data.lerobot import export_lerobot, import_lerobot


def _assert_same_store(a: ReplayBuffer, b: ReplayBuffer) -> None:
    assert sorted(a.keys()) == sorted(b.keys())
    np.testing.assert_array_equal(a.episode_ends, b.episode_ends)
    for key in a.keys():
        x, y = a[key][: a.n_steps], b[key][: b.n_steps]
        assert x.dtype == y.dtype and x.shape == y.shape, (key, x.dtype, y.dtype, x.shape, y.shape)
        np.testing.assert_array_equal(x, y, err_msg=key)


def test_round_trip_keeps_every_array_exactly(store, tmp_path, helpers):
    path, _ = store
    out = export_lerobot(path, tmp_path / "lr", fps=10)
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["total_episodes"] == 3 and info["total_frames"] == sum(helpers.episode_lengths)
    assert info["features"]["observation.image"]["dtype"] == "image"
    assert info["features"]["observation.state"]["shape"] == [3]
    assert info["features"]["next.reward"]["shape"] == [1]
    back = import_lerobot(out, tmp_path / "back.zarr")
    original = ReplayBuffer.open(path)
    _assert_same_store(original, back)
    assert dict(back.attrs) == dict(original.attrs)
    assert not list(tmp_path.glob(".*tmp-*")), "temporary directories left behind"


def test_stats_are_lerobots_over_all_frames(store, tmp_path):
    path, episodes = store
    out = export_lerobot(path, tmp_path / "lr", fps=10)
    stats = json.loads((out / "meta" / "stats.json").read_text())
    state = np.concatenate([e["agent_pos"] for e in episodes])
    np.testing.assert_allclose(stats["observation.state"]["mean"], state.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["observation.state"]["std"], state.std(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats["observation.state"]["min"], state.min(0))
    np.testing.assert_allclose(stats["observation.state"]["max"], state.max(0))
    action = np.concatenate([e["action"] for e in episodes])
    np.testing.assert_allclose(stats["action"]["max"], action.max(0))


def _read_with_lerobot(root) -> dict[str, np.ndarray]:
    """Every frame through LeRobot's own LeRobotDataset.__getitem__, stacked per key."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/demo", root=root)
    keys = ["observation.state", "observation.environment_state", "observation.image",
            "action", "next.reward", "episode_index", "frame_index", "timestamp"]
    items = [ds[i] for i in range(len(ds))]
    out = {k.replace(".", "_"): np.stack([it[k].numpy() for it in items]) for k in keys}
    out["task"] = np.array([it["task"] for it in items])
    return out


def test_lerobot_reads_export_offline_with_same_values(store, tmp_path, helpers, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    lengths = helpers.episode_lengths
    path, episodes = store
    out = export_lerobot(path, tmp_path / "lr", fps=20, task="reach the goal")
    got = _read_with_lerobot(out)
    cat = {k: np.concatenate([e[k] for e in episodes]) for k in episodes[0]}
    np.testing.assert_array_equal(got["observation_state"], cat["agent_pos"])
    np.testing.assert_array_equal(got["observation_environment_state"], cat["environment_state"])
    np.testing.assert_array_equal(got["action"], cat["action"])
    np.testing.assert_array_equal(got["next_reward"], cat["reward"])
    # LeRobot yields images as float (C, H, W) in [0, 1].
    np.testing.assert_allclose(got["observation_image"],
                               cat["pixels"].transpose(0, 3, 1, 2) / 255.0, atol=1e-6)
    frame_index = np.concatenate([np.arange(n) for n in lengths])
    np.testing.assert_array_equal(got["frame_index"], frame_index)
    np.testing.assert_array_equal(got["episode_index"],
                                  np.repeat(np.arange(len(lengths)), lengths))
    np.testing.assert_allclose(got["timestamp"], frame_index / 20.0, atol=1e-6)
    assert set(got["task"]) == {"reach the goal"}


def test_video_round_trip_within_codec_loss(tmp_path, helpers):
    # Smooth images (a codec keeps them well) at a size video encoders accept.
    episodes = helpers.make_episodes(seed=1, image_hw=(64, 64))
    yy, xx = np.mgrid[0:64, 0:64]
    for e in episodes:
        for t in range(len(e["pixels"])):
            base = (2 * xx + 3 * yy + 10 * t) % 256
            e["pixels"][t] = np.stack([base, 255 - base, np.full_like(base, 128)], -1)
    helpers.write_store(tmp_path / "v.zarr", episodes)
    out = export_lerobot(tmp_path / "v.zarr", tmp_path / "lr", fps=10, use_videos=True)
    assert list((out / "videos" / "observation.image").rglob("*.mp4"))
    back = import_lerobot(out, tmp_path / "back.zarr")
    original = ReplayBuffer.open(tmp_path / "v.zarr")
    for key in original.keys():
        x, y = original[key][:], back[key][:]
        assert x.dtype == y.dtype and x.shape == y.shape, key
        if key != "pixels":
            np.testing.assert_array_equal(x, y, err_msg=key)
    err = np.abs(original["pixels"][:].astype(np.int16) - back["pixels"][:].astype(np.int16))
    assert err.mean() < 8.0, err.mean()


def test_lerobot_reads_video_export(tmp_path, helpers, monkeypatch):
    """LeRobot's own reader (LeRobotDataset.__getitem__, its default decoder here: PyAV through
    torchvision.io.VideoReader, which make lerobot's shim provides) decodes a --video export: every
    frame near the original, and each item's frame is the one of its own timestamp."""
    import huggingface_hub.constants
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    episodes = helpers.make_episodes(seed=2, image_hw=(32, 32))
    yy, xx = np.mgrid[0:32, 0:32]
    n = 0
    for e in episodes:
        for t in range(len(e["pixels"])):  # smooth, and different in every frame of the store
            e["pixels"][t] = np.stack([(4 * xx + 8 * n) % 256, (4 * yy + 20 * n) % 256,
                                       np.full_like(xx, 16 * n % 256)], -1)
            n += 1
    helpers.write_store(tmp_path / "v.zarr", episodes)
    out = export_lerobot(tmp_path / "v.zarr", tmp_path / "lr", fps=10, use_videos=True)
    ds = LeRobotDataset("local/lr", root=out)
    assert ds.meta.video_keys == ["observation.image"]
    original = np.concatenate([e["pixels"] for e in episodes]).astype(np.float32) / 255.0
    got = np.stack([ds[i]["observation.image"].numpy().transpose(1, 2, 0) for i in range(len(ds))])
    assert got.shape == original.shape
    err = np.abs(got - original).mean(axis=(1, 2, 3))  # (T,)
    assert err.max() < 0.05, err
    # The nearest original frame of every decoded one is its own (frames differ by > 0.05).
    dist = np.abs(got[:, None] - original[None]).mean(axis=(2, 3, 4))  # (T, T)
    np.testing.assert_array_equal(dist.argmin(1), np.arange(len(got)))


def test_bad_input_is_a_clear_error(tmp_path, store, helpers):
    path, _ = store
    export_lerobot(path, tmp_path / "lr", fps=10)
    with pytest.raises(FileExistsError, match="lr"):
        export_lerobot(path, tmp_path / "lr", fps=10)
    with pytest.raises(ValueError, match="fps"):
        export_lerobot(path, tmp_path / "lr2", fps=0)
    clash = helpers.make_episodes()
    for e in clash:
        e["timestamp"] = np.zeros(len(e["action"]), np.float32)
    helpers.write_store(tmp_path / "clash.zarr", clash)
    with pytest.raises(ValueError, match="'timestamp'"):
        export_lerobot(tmp_path / "clash.zarr", tmp_path / "lr3", fps=10)
    assert not (tmp_path / "lr3").exists()
    with pytest.raises(FileNotFoundError, match="info.json"):
        import_lerobot(tmp_path, tmp_path / "x.zarr")


def test_cli_export_then_import(store, tmp_path, capsys):
    from ttfkit.scripts.cli import main

    path, _ = store
    assert main(["data", "export-lerobot", str(path), str(tmp_path / "lr"), "--fps", "15",
                 "--task", "reach"]) == 0
    info = json.loads((tmp_path / "lr" / "meta" / "info.json").read_text())
    assert info["fps"] == 15
    assert main(["data", "import-lerobot", str(tmp_path / "lr"), str(tmp_path / "b.zarr")]) == 0
    assert "3 episodes" in capsys.readouterr().out
    _assert_same_store(ReplayBuffer.open(path), ReplayBuffer.open(tmp_path / "b.zarr"))


def test_overwrite_replaces_only_the_same_kind_of_export(store, tmp_path, helpers):
    """--overwrite markers: a dataset export, a policy export and a Diamond Map never replace each other;
    an export written before exports had their own kind (generic marker) is still replaced by its own kind."""
    from lerobot_policy_ttfkit.export_ttfkit import export_ttfkit_policy

    from ttfkit.align.diamond import DiamondMap, MLPPhi
    from ttfkit.align.policy_diamond import save_diamond
    from ttfkit.data.atomic import MARKER

    path, _ = store
    dataset = export_lerobot(path, tmp_path / "lr", fps=10)
    info = (dataset / "meta/info.json").read_text()
    with pytest.raises(FileExistsError, match=r"lr: refusing to replace it: it is a ttfkit lerobot-dataset"):
        save_diamond(DiamondMap(MLPPhi(4, hidden=8, depth=1)), dataset)
    helpers.make_checkpoint(path, tmp_path / "ckpt")
    with pytest.raises(FileExistsError, match="lerobot-dataset, not a ttfkit lerobot-policy"):
        export_ttfkit_policy(tmp_path / "ckpt", dataset, overwrite=True)
    assert (dataset / "meta/info.json").read_text() == info and not list(tmp_path.glob(".lr.*"))

    dmap = save_diamond(DiamondMap(MLPPhi(4, hidden=8, depth=1)), tmp_path / "dm")
    with pytest.raises(FileExistsError, match="not a ttfkit lerobot-dataset"):
        export_lerobot(path, dmap, fps=10, overwrite=True)
    assert (dmap / "model.safetensors").is_file()

    (dataset / MARKER).write_text(json.dumps({"kind": "artefact"}))  # as exports were marked before
    export_lerobot(path, dataset, fps=10, overwrite=True)
    assert json.loads((dataset / MARKER).read_text()) == {"kind": "lerobot-dataset"}
    policy = export_ttfkit_policy(tmp_path / "ckpt", tmp_path / "pol")
    (policy / MARKER).write_text(json.dumps({"kind": "artefact"}))
    export_ttfkit_policy(tmp_path / "ckpt", policy, overwrite=True)
    assert json.loads((policy / MARKER).read_text()) == {"kind": "lerobot-policy"}
