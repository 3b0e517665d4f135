"""Normalizer: closed-form stats, [-1, 1] range, constant dims, exact inverse, persistence."""

import json

import numpy as np
import pytest
import torch

from ttfkit.data import Normalizer, ReplayBuffer


@pytest.fixture
def buffer(tmp_path):
    rng = np.random.default_rng(4)
    buf = ReplayBuffer.create(tmp_path / "n.zarr")
    for n in (30, 17, 25):
        state = rng.normal(3.0, 2.0, size=(n, 4)).astype(np.float32)
        state[:, 2] = 7.5  # constant dimension
        buf.add_episode({
            "agent_pos": state,
            "action": rng.uniform(-3, 5, size=(n, 2)).astype(np.float32),
            "pixels": rng.integers(0, 256, size=(n, 4, 4, 3), dtype=np.uint8),
        })
    return buf


def _all(buf, key):
    return torch.from_numpy(buf[key][: buf.n_steps]).double()


def test_fit_stats_match_numpy(buffer):
    norm = Normalizer.fit(buffer, ["agent_pos", "action"], mode="meanstd")
    d = norm.to_dict()
    for key in ("agent_pos", "action"):
        x = buffer[key][:].astype(np.float64)
        np.testing.assert_allclose(d[key]["min"], x.min(0), rtol=1e-6)
        np.testing.assert_allclose(d[key]["max"], x.max(0), rtol=1e-6)
        np.testing.assert_allclose(d[key]["mean"], x.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(d[key]["std"], x.std(0), rtol=1e-5, atol=1e-6)
        assert d[key]["mode"] == "meanstd"


def test_streamed_stats_span_several_chunks(tmp_path, monkeypatch):
    """Chunked accumulation (several zarr chunks) equals one-shot numpy, with a large offset."""
    import ttfkit.data.replay_buffer as rb

    monkeypatch.setattr(rb, "_CHUNK_BYTES", 64)  # 8 steps of (2,) float32 per chunk
    buf = ReplayBuffer.create(tmp_path / "c.zarr")
    x = (1e4 + np.random.default_rng(0).normal(size=(50, 2))).astype(np.float32)
    buf.add_episode({"action": x})
    assert buf["action"].chunks[0] == 8
    d = Normalizer.fit(buf, ["action"], mode="meanstd").to_dict()["action"]
    np.testing.assert_allclose(d["mean"], x.astype(np.float64).mean(0), rtol=1e-7)
    np.testing.assert_allclose(d["std"], x.astype(np.float64).std(0), rtol=1e-4)


def test_minmax_maps_to_unit_interval_and_constant_to_zero(buffer):
    norm = Normalizer.fit(buffer, ["agent_pos", "action"], mode="minmax")
    for key in ("agent_pos", "action"):
        y = norm.normalize(key, _all(buffer, key).float())
        assert torch.all(y >= -1 - 1e-6) and torch.all(y <= 1 + 1e-6)
        varying = [i for i in range(y.shape[1]) if key != "agent_pos" or i != 2]
        for i in varying:
            assert float(y[:, i].min()) == pytest.approx(-1, abs=1e-6)
            assert float(y[:, i].max()) == pytest.approx(1, abs=1e-6)
    y = norm.normalize("agent_pos", _all(buffer, "agent_pos").float())
    assert torch.all(y[:, 2] == 0) and torch.isfinite(y).all()
    scale, offset = norm.affine("agent_pos")  # the (scale, offset) that normalize applies, from min/max directly
    x = _all(buffer, "agent_pos").float()
    lo, hi = x.min(0).values, x.max(0).values
    const = torch.arange(x.shape[1]) == 2
    torch.testing.assert_close(scale, torch.where(const, 1.0, 2 / (hi - lo)))
    torch.testing.assert_close(offset, torch.where(const, -lo, -(hi + lo) / (hi - lo)))
    assert torch.equal(y, x * scale + offset)


def test_meanstd_is_standardised_and_constant_to_zero(buffer):
    norm = Normalizer.fit(buffer, ["agent_pos"], mode="meanstd")
    y = norm.normalize("agent_pos", _all(buffer, "agent_pos").float()).double()
    keep = [0, 1, 3]
    torch.testing.assert_close(y[:, keep].mean(0), torch.zeros(3, dtype=torch.float64),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(y[:, keep].std(0, unbiased=False), torch.ones(3, dtype=torch.float64),
                               atol=1e-5, rtol=0)
    assert torch.all(y[:, 2] == 0)


@pytest.mark.parametrize("mode", ["minmax", "meanstd"])
def test_unnormalize_inverts_normalize(buffer, mode):
    norm = Normalizer.fit(buffer, ["agent_pos", "action", "pixels"], mode=mode)
    x = torch.randn(5, 3, 4) * 4 + 2  # (B, H, Do): broadcast over leading dims
    torch.testing.assert_close(norm.unnormalize("agent_pos", norm.normalize("agent_pos", x)), x,
                               atol=1e-5, rtol=1e-6)
    y = torch.rand(2, 7, 2) * 2 - 1
    torch.testing.assert_close(norm.normalize("action", norm.unnormalize("action", y)), y,
                               atol=1e-6, rtol=1e-6)
    xd = x.double()  # in float64 the round trip is exact to float64 precision
    torch.testing.assert_close(norm.unnormalize("agent_pos", norm.normalize("agent_pos", xd)), xd,
                               atol=1e-12, rtol=1e-12)


def test_pixels_fixed_stats(buffer):
    norm = Normalizer.fit(buffer, ["pixels", "action"], mode={"pixels": "meanstd",
                                                                "action": "minmax"})
    assert norm.mode("pixels") == "image" and norm.mode("action") == "minmax"
    px = torch.tensor([0.0, 0.25, 1.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(norm.normalize("pixels", px), torch.tensor([-1.0, -0.5, 1.0])
                               .view(1, 3, 1, 1))


def test_state_dict_dict_and_safetensors_round_trips(buffer, tmp_path):
    norm = Normalizer.fit(buffer, ["agent_pos", "action", "pixels"],
                          mode={"agent_pos": "meanstd", "action": "minmax", "pixels": "minmax"})
    x = {"agent_pos": torch.randn(3, 2, 4), "action": torch.randn(3, 16, 2),
         "pixels": torch.rand(3, 2, 3, 4, 4)}
    expected = {k: norm.normalize(k, v) for k, v in x.items()}

    sd = norm.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in sd.values())  # safetensors-compatible
    assert "stats.action.scale" in sd
    empty = Normalizer()
    empty.load_state_dict(sd)
    d = json.loads(json.dumps(norm.to_dict()))
    norm.save(tmp_path / "norm.safetensors")
    for other in (empty, Normalizer.from_dict(d), Normalizer.load(tmp_path / "norm.safetensors")):
        assert other.keys() == norm.keys()
        assert [other.mode(k) for k in other.keys()] == [norm.mode(k) for k in norm.keys()]
        for k, v in x.items():
            torch.testing.assert_close(other.normalize(k, v), expected[k], rtol=0, atol=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.zarr", "norm.safetensors"]


def test_keys_with_dots_survive_state_dict():
    norm = Normalizer({"observation.state": {"mode": "minmax", "min": [0.0, 1.0],
                                             "max": [2.0, 1.0], "mean": [1.0, 1.0],
                                             "std": [1.0, 0.0]}})
    other = Normalizer()
    other.load_state_dict(norm.state_dict())
    assert other.keys() == ["observation.state"]
    torch.testing.assert_close(other.normalize("observation.state", torch.tensor([[2.0, 1.0]])),
                               torch.tensor([[1.0, 0.0]]))


def test_module_buffers_follow_dtype_and_device_moves(buffer):
    norm = Normalizer.fit(buffer, ["action"]).double()
    assert norm.stats["action"].scale.dtype == torch.float64
    x = torch.randn(4, 2)
    assert norm.normalize("action", x).dtype == torch.float32


def test_errors(buffer, tmp_path):
    norm = Normalizer.fit(buffer, ["action"])
    with pytest.raises(KeyError, match="'velocity'.*keys: \\['action'\\]"):
        norm.normalize("velocity", torch.zeros(2))
    with pytest.raises(ValueError, match=r"input shape \(4, 3\).*feature shape \(2,\)"):
        norm.normalize("action", torch.zeros(4, 3))
    with pytest.raises(KeyError, match=r"n\.zarr.*'nope'"):
        Normalizer.fit(buffer, ["nope"])
    with pytest.raises(ValueError, match="mode must be one of"):
        Normalizer.fit(buffer, ["action"], mode="zscore")
    with pytest.raises(KeyError, match="no mode given for key 'agent_pos'"):
        Normalizer.fit(buffer, ["action", "agent_pos"], mode={"action": "minmax"})
    (tmp_path / "bad.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"bad\.safetensors: not a readable safetensors"):
        Normalizer.load(tmp_path / "bad.safetensors")
    import safetensors.torch
    safetensors.torch.save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match=r"other\.safetensors: not a ttfkit normalizer"):
        Normalizer.load(tmp_path / "other.safetensors")
    empty = ReplayBuffer.create(tmp_path / "e.zarr")
    with pytest.raises(ValueError, match="empty store"):
        Normalizer.fit(empty, ["action"])
