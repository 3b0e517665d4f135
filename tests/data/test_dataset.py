"""SequenceDataset against a brute-force reference of Diffusion Policy's padded windows."""

import numpy as np
import pytest
import torch
import zarr
from torch.utils.data import DataLoader

from ttfkit.data import ReplayBuffer, SequenceDataset

LENGTHS = (7, 3, 12, 5, 1, 9)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("ds") / "s.zarr"
    buf = ReplayBuffer.create(path)
    episodes = []
    for i, n in enumerate(LENGTHS):
        t = np.arange(n, dtype=np.float32)
        ep = {  # values encode (episode, step) so a wrong row is visible
            "agent_pos": np.stack([np.full(n, i, np.float32), t], axis=1),
            "environment_state": rng.normal(size=(n, 5)).astype(np.float32),
            "action": np.stack([100 * i + t, -t, t * t], axis=1).astype(np.float32),
            "pixels": rng.integers(0, 256, size=(n, 6, 4, 3), dtype=np.uint8),
        }
        buf.add_episode(ep)
        episodes.append(ep)
    return path, episodes


def _reference_windows(episodes, horizon, n_obs, n_act):
    """Brute force: pad each episode by repeating its first frame n_obs-1 times and its last frame
    n_act-1 times, then take every horizon-long window of the padded sequence."""
    out = []
    for ep in episodes:
        padded = {k: np.concatenate([np.repeat(v[:1], n_obs - 1, 0), v,
                                     np.repeat(v[-1:], n_act - 1, 0)]) for k, v in ep.items()}
        total = len(ep["action"]) + n_obs - 1 + n_act - 1
        for s in range(total - horizon + 1):
            out.append({k: v[s: s + horizon] for k, v in padded.items()})
    return out


@pytest.mark.parametrize("horizon,n_obs,n_act", [(16, 2, 8), (4, 2, 2), (5, 1, 1), (6, 3, 4)])
def test_windows_match_brute_force_reference(store, horizon, n_obs, n_act):
    path, episodes = store
    ds = SequenceDataset(path, horizon=horizon, n_obs_steps=n_obs, n_action_steps=n_act,
                         obs_keys=("agent_pos", "environment_state", "pixels"), split="all")
    ref = _reference_windows(episodes, horizon, n_obs, n_act)
    assert len(ds) == len(ref) > 0
    for i, r in enumerate(ref):
        item = ds[i]
        np.testing.assert_array_equal(item["action"].numpy(), r["action"])
        for k in ("agent_pos", "environment_state"):
            np.testing.assert_array_equal(item["obs"][k].numpy(), r[k][:n_obs])
        expected_px = np.transpose(r["pixels"][:n_obs], (0, 3, 1, 2)).astype(np.float32) / 255
        np.testing.assert_allclose(item["obs"]["pixels"].numpy(), expected_px, rtol=0, atol=1e-7)


def test_item_types_shapes_and_first_window_padding(store):
    path, episodes = store
    ds = SequenceDataset(path, horizon=4, n_obs_steps=2, n_action_steps=3,
                         obs_keys=("agent_pos", "pixels"), split="all")
    item = ds[0]
    assert item["action"].dtype == torch.float32 and item["action"].shape == (4, 3)
    assert item["obs"]["agent_pos"].shape == (2, 2)
    assert item["obs"]["pixels"].shape == (2, 3, 6, 4) and item["obs"]["pixels"].dtype == torch.float32
    px = item["obs"]["pixels"]
    assert 0.0 <= float(px.min()) and float(px.max()) <= 1.0
    # first window of episode 0: the first frame repeated once, then steps 0, 1, 2
    np.testing.assert_array_equal(item["obs"]["agent_pos"][:, 1].numpy(), [0, 0])
    np.testing.assert_array_equal(item["action"][:, 0].numpy(), [0, 0, 1, 2])
    # episode of length 1 (index 4): windows only repeat its single frame
    start = sum(n - 4 + 1 + 2 + 1 for n in LENGTHS[:4])  # L - H + (To-1) + (Ta-1) + 1 each
    single = ds[start]
    np.testing.assert_array_equal(single["action"].numpy(),
                                  np.repeat(episodes[4]["action"], 4, axis=0))


def test_default_collate_gives_batched_layout(store):
    path, _ = store
    ds = SequenceDataset(path, horizon=4, n_action_steps=2, split="all")
    batch = next(iter(DataLoader(ds, batch_size=5, shuffle=False)))
    assert set(batch["obs"]) == {"agent_pos", "environment_state"}
    assert batch["obs"]["agent_pos"].shape == (5, 2, 2)
    assert batch["obs"]["environment_state"].shape == (5, 2, 5)
    assert batch["action"].shape == (5, 4, 3)


def test_split_is_seeded_disjoint_and_covering(store):
    path, _ = store
    kw = dict(horizon=2, n_obs_steps=1, n_action_steps=2, val_fraction=0.34)  # L windows each
    train = SequenceDataset(path, split="train", seed=3, **kw)
    val = SequenceDataset(path, split="val", seed=3, **kw)
    assert set(train.episode_indices).isdisjoint(val.episode_indices)
    assert sorted([*train.episode_indices, *val.episode_indices]) == list(range(len(LENGTHS)))
    assert len(val.episode_indices) == 2  # round(6 * 0.34)
    again = SequenceDataset(path, split="val", seed=3, **kw)
    np.testing.assert_array_equal(again.episode_indices, val.episode_indices)
    splits = {tuple(SequenceDataset(path, split="val", seed=s, **kw).episode_indices)
              for s in range(10)}
    assert len(splits) > 1  # the seed matters
    # windows of the val split come only from its episodes (agent_pos[:, 0] holds the episode id)
    ids = {int(val[i]["obs"]["agent_pos"][0, 0]) for i in range(len(val))}
    assert ids == set(val.episode_indices.tolist())
    n_windows = sum(LENGTHS[e] for e in val.episode_indices)
    assert len(val) == n_windows
    assert len(SequenceDataset(path, split="train", **{**kw, "val_fraction": 0.0})) == \
        sum(LENGTHS)


def test_reads_dp_pusht_layout(tmp_path):
    """A PushT-like store written with zarr directly samples the right rows and image layout."""
    rng = np.random.default_rng(2)
    ends = np.array([5, 12], dtype=np.int64)
    n = 12
    arrays = {"action": rng.normal(size=(n, 2)).astype(np.float32),
              "img": rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8),
              "keypoint": rng.normal(size=(n, 9, 2)).astype(np.float32),
              "n_contacts": np.zeros((n, 1), np.float32),
              "state": rng.normal(size=(n, 5)).astype(np.float32)}
    root = zarr.open_group(str(tmp_path / "pusht.zarr"), mode="w", zarr_format=2)
    for k, v in arrays.items():
        root.create_group("data") if "data" not in root else None
        root["data"].create_array(k, data=v, chunks=(4, *v.shape[1:]))
    root.create_group("meta").create_array("episode_ends", data=ends)
    ds = SequenceDataset(tmp_path / "pusht.zarr", horizon=4, n_obs_steps=2, n_action_steps=2,
                         obs_keys=("img", "state", "keypoint"), split="all")
    episodes = [{k: v[b:e] for k, v in arrays.items()} for b, e in ((0, 5), (5, 12))]
    ref = _reference_windows(episodes, 4, 2, 2)
    assert len(ds) == len(ref)
    for i in (0, 3, len(ref) - 1):
        item = ds[i]
        np.testing.assert_array_equal(item["action"].numpy(), ref[i]["action"])
        np.testing.assert_array_equal(item["obs"]["state"].numpy(), ref[i]["state"][:2])
        np.testing.assert_array_equal(item["obs"]["keypoint"].numpy(), ref[i]["keypoint"][:2])
        np.testing.assert_allclose(item["obs"]["img"].numpy(),
                                   ref[i]["img"][:2].transpose(0, 3, 1, 2) / 255.0, atol=1e-7)


def test_errors(store, tmp_path):
    path, _ = store
    with pytest.raises(KeyError, match=r"s\.zarr.*'velocity'"):
        SequenceDataset(path, obs_keys=("agent_pos", "velocity"))
    with pytest.raises(KeyError, match="'act'"):
        SequenceDataset(path, action_key="act")
    with pytest.raises(ValueError, match="horizon=1"):
        SequenceDataset(path, horizon=1, n_obs_steps=2)
    with pytest.raises(ValueError, match="val_fraction=1.0"):
        SequenceDataset(path, val_fraction=1.0)
    with pytest.raises(ValueError, match="split='test'"):
        SequenceDataset(path, split="test")
    with pytest.raises(ValueError, match="split 'val' is empty"):
        SequenceDataset(path, split="val", val_fraction=0.0)
    with pytest.raises(ValueError, match=r"s\.zarr: action key 'pixels' has shape \(37, 6, 4, 3\)"):
        SequenceDataset(path, action_key="pixels")
    with pytest.raises(TypeError, match="string"):
        SequenceDataset(path, obs_keys="agent_pos")
    empty = ReplayBuffer.create(tmp_path / "empty.zarr")
    with pytest.raises(ValueError, match="no episodes"):
        SequenceDataset(empty)
