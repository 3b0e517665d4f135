"""Diffusion Policy's stores as DP writes them (zarr 2, built here with zarr directly): PushT's float32
``img`` and a real-robot store whose cameras use imagecodecs' Jpeg2k codec."""

import subprocess
import sys

import numcodecs
import numpy as np
import pytest
import torch
import zarr

from ttfkit.data import Normalizer, ReplayBuffer, SequenceDataset

EPISODE_ENDS = [5, 12, 18]


def _dp_store(path, arrays: dict[str, np.ndarray], compressors: dict[str, object] | None = None):
    """DP's ReplayBuffer layout: data/<key> chunked along time, Blosc lz4 (DP's default), and
    meta/episode_ends int64 with DP's fill value 0."""
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    data, meta = root.create_group("data"), root.create_group("meta")
    for key, value in arrays.items():
        codec = (compressors or {}).get(key, numcodecs.Blosc(cname="lz4", clevel=5))
        per_frame = key in (compressors or {})  # image codecs: one frame per chunk, as DP writes
        arr = data.create_array(key, shape=value.shape, dtype=value.dtype,
                                chunks=(1 if per_frame else 4, *value.shape[1:]), compressors=codec)
        arr[:] = value
    ends = meta.create_array("episode_ends", shape=(len(EPISODE_ENDS),), dtype=np.int64,
                             chunks=(4,), fill_value=0)
    ends[:] = np.array(EPISODE_ENDS, np.int64)


def _pusht(seed=0):
    rng = np.random.default_rng(seed)
    n = EPISODE_ENDS[-1]
    return {"img": (rng.random((n, 16, 16, 3)) * 255).astype(np.float32),  # PushT: float32 0..255
            "state": rng.uniform(0, 512, (n, 5)).astype(np.float32),
            "keypoint": rng.uniform(0, 512, (n, 9, 2)).astype(np.float32),
            "n_contacts": rng.integers(0, 3, (n, 1)).astype(np.float32),
            "action": rng.uniform(0, 512, (n, 2)).astype(np.float32)}


def test_pusht_float_images_read_normalise_and_copy(tmp_path):
    arrays = _pusht()
    _dp_store(tmp_path / "pusht.zarr", arrays)
    buf = ReplayBuffer.open(tmp_path / "pusht.zarr")
    np.testing.assert_array_equal(buf.episode_ends, EPISODE_ENDS)
    ds = SequenceDataset(buf, horizon=4, n_obs_steps=2, n_action_steps=2, obs_keys=["img", "state"],
                         split="all")
    item = ds[3]["obs"]["img"]  # (To, C, H, W) float, as stored: no 1/255 for float images
    rows = ds.window_indices(3)[:2]
    np.testing.assert_array_equal(item.numpy(), arrays["img"][rows].transpose(0, 3, 1, 2))
    norm = Normalizer.fit(buf, ["img", "state", "action"], mode="minmax")
    img = torch.from_numpy(arrays["img"].transpose(0, 3, 1, 2).copy())  # (T, C, H, W)
    y = norm.normalize("img", img)
    for c in range(3):  # one min-max per channel: each channel spans exactly [-1, 1]
        assert abs(float(y[:, c].min()) + 1) < 1e-6 and abs(float(y[:, c].max()) - 1) < 1e-6
    torch.testing.assert_close(norm.unnormalize("img", y), img, rtol=1e-6, atol=1e-3)
    # Copying the store into a ttfkit one keeps the float images (previously refused).
    out = ReplayBuffer.create(tmp_path / "copy.zarr")
    for i in range(buf.n_episodes):
        out.add_episode(buf.get_episode(i))
    np.testing.assert_array_equal(ReplayBuffer.open(tmp_path / "copy.zarr")["img"][:], arrays["img"])
    with pytest.raises(ValueError, match=r"'bad' looks like images .* int16; expected float or uint8"):
        ReplayBuffer.create(tmp_path / "bad.zarr").add_episode({"bad": np.zeros((5, 4, 4, 3), np.int16)})


def test_jpeg2k_store_opens_with_imagecodecs(tmp_path):
    from imagecodecs.numcodecs import Jpeg2k

    rng = np.random.default_rng(1)
    n = EPISODE_ENDS[-1]
    camera = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    arrays = {"camera_0": camera, "robot_eef_pose": rng.normal(size=(n, 6)).astype(np.float32),
              "action": rng.normal(size=(n, 6)).astype(np.float32)}
    # DP's real-robot stores use Jpeg2k(level=50) (lossy); reversible=True keeps the test exact.
    _dp_store(tmp_path / "real.zarr", arrays, {"camera_0": Jpeg2k(reversible=True)})
    code = ("import sys; sys.modules['imagecodecs'] = None\n"  # a machine without the extra
            "from ttfkit.data import ReplayBuffer\n"
            f"ReplayBuffer.open({str(tmp_path / 'real.zarr')!r})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "array 'data/camera_0' is compressed with 'imagecodecs_jpeg2k'" in proc.stderr
    assert "pip install 'ttfkit[imagecodecs]'" in proc.stderr
    buf = ReplayBuffer.open(tmp_path / "real.zarr")  # registers imagecodecs' codecs
    np.testing.assert_array_equal(buf["camera_0"][:], camera)
    ds = SequenceDataset(buf, horizon=2, n_obs_steps=1, n_action_steps=1, obs_keys=["camera_0"],
                         split="all")
    np.testing.assert_allclose(ds[0]["obs"]["camera_0"].numpy(),
                               camera[:1].transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)
