"""ReplayBuffer: layout, round trips, Diffusion Policy interop, crash safety, and every bad input."""

import json
import logging
import os

import numpy as np
import pytest
import zarr

from ttfkit.data import ReplayBuffer
import ttfkit.data.replay_buffer as ttfkit_rb
from ttfkit.data.replay_buffer import _CHUNK_BYTES


def _episode(rng, length, image=False):
    ep = {
        "agent_pos": rng.normal(size=(length, 4)).astype(np.float32),
        "environment_state": rng.normal(size=(length, 6)).astype(np.float32),
        "action": rng.uniform(-1, 1, size=(length, 3)).astype(np.float32),
    }
    if image:
        ep["pixels"] = rng.integers(0, 256, size=(length, 12, 10, 3), dtype=np.uint8)
    return ep


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def filled(tmp_path, rng):
    path = tmp_path / "buf.zarr"
    buf = ReplayBuffer.create(path, attrs={"env_id": "test", "seeds": [1, 2, 3]})
    episodes = [_episode(rng, n, image=True) for n in (5, 9, 3)]
    for ep in episodes:
        buf.add_episode(ep)
    return path, episodes


def test_round_trip_and_counts(filled):
    path, episodes = filled
    buf = ReplayBuffer.open(path)
    assert buf.n_episodes == 3 and len(buf) == 3
    assert buf.n_steps == 17
    np.testing.assert_array_equal(buf.episode_ends, [5, 14, 17])
    np.testing.assert_array_equal(buf.episode_lengths, [5, 9, 3])
    assert buf.keys() == ["action", "agent_pos", "environment_state", "pixels"]
    assert buf.attrs["env_id"] == "test" and buf.attrs["seeds"] == [1, 2, 3]
    for i, ep in enumerate(episodes):
        got = buf.get_episode(i)
        assert set(got) == set(ep)
        for k in ep:
            np.testing.assert_array_equal(got[k], ep[k])
            assert got[k].dtype == ep[k].dtype
    np.testing.assert_array_equal(buf.get_episode(-1)["action"], episodes[-1]["action"])
    np.testing.assert_array_equal(buf["action"][:], np.concatenate([e["action"] for e in episodes]))


def test_on_disk_layout_is_zarr2_blosc_zstd_time_chunked(filled):
    path, _ = filled
    assert json.loads((path / ".zgroup").read_text())["zarr_format"] == 2
    for key, step_bytes in [("action", 3 * 4), ("pixels", 12 * 10 * 3)]:
        meta = json.loads((path / "data" / key / ".zarray").read_text())
        assert meta["zarr_format"] == 2
        assert meta["filters"] == [{"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 1, "blocksize": 0}]
        assert meta["compressor"] == {"id": "crc32"}  # a checksum of the compressed chunk
        assert meta["chunks"][1:] == meta["shape"][1:]  # chunked along time only
        assert meta["chunks"][0] == _CHUNK_BYTES // step_bytes
    ends = json.loads((path / "meta" / "episode_ends" / ".zarray").read_text())
    assert ends["dtype"] == "<i8" and ends["zarr_format"] == 2
    assert json.loads((path / "data" / "pixels" / ".zarray").read_text())["dtype"] == "|u1"


def test_opens_with_plain_zarr_in_dp_layout(filled):
    path, episodes = filled
    root = zarr.open_group(str(path), mode="r", zarr_format=2)
    np.testing.assert_array_equal(root["meta/episode_ends"][:], [5, 14, 17])
    np.testing.assert_array_equal(root["data/pixels"][5:14], episodes[1]["pixels"])


def test_create_refuses_to_overwrite_unless_asked(filled, rng):
    path, _ = filled
    with pytest.raises(FileExistsError, match="buf.zarr"):
        ReplayBuffer.create(path)
    assert ReplayBuffer.open(path).n_episodes == 3  # untouched
    buf = ReplayBuffer.create(path, attrs={"new": True}, overwrite=True)
    assert buf.n_episodes == 0 and buf.keys() == [] and buf.attrs["new"] is True
    assert sorted(p.name for p in path.parent.iterdir()) == ["buf.zarr"]  # no temp left


def test_build_appears_only_when_complete(tmp_path, rng):
    path = tmp_path / "built.zarr"
    with pytest.raises(RuntimeError, match="boom"):
        with ReplayBuffer.build(path) as buf:
            buf.add_episode(_episode(rng, 4))
            assert not path.exists()
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with ReplayBuffer.build(path, attrs={"a": 1}) as buf:
        buf.add_episode(_episode(rng, 4))
    assert buf.path == path
    assert ReplayBuffer.open(path).n_steps == 4
    with pytest.raises(FileExistsError, match="built.zarr"):
        with ReplayBuffer.build(path):
            pass


def test_reopen_append(filled, rng):
    path, _ = filled
    buf = ReplayBuffer.open(path, mode="a")
    buf.add_episode(_episode(rng, 2, image=True))
    np.testing.assert_array_equal(ReplayBuffer.open(path).episode_ends, [5, 14, 17, 19])
    with pytest.raises(PermissionError, match="read-only"):
        ReplayBuffer.open(path).add_episode(_episode(rng, 2, image=True))


def test_reads_dp_pusht_store_written_by_zarr(tmp_path, rng):
    """A store laid out like Diffusion Policy's PushT, written with zarr directly (format 2)."""
    path = tmp_path / "pusht.zarr"
    ends = np.array([4, 11, 15], dtype=np.int64)
    n = int(ends[-1])
    arrays = {
        "action": rng.normal(size=(n, 2)).astype(np.float32),
        "img": rng.integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8),
        "keypoint": rng.normal(size=(n, 9, 2)).astype(np.float32),
        "n_contacts": rng.integers(0, 3, size=(n, 1)).astype(np.float32),
        "state": rng.normal(size=(n, 5)).astype(np.float32),
    }
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    data = root.create_group("data")
    for k, v in arrays.items():
        data.create_array(k, data=v, chunks=(8, *v.shape[1:]))
    root.create_group("meta").create_array("episode_ends", data=ends)

    buf = ReplayBuffer.open(path)
    assert buf.keys() == sorted(arrays)
    np.testing.assert_array_equal(buf.episode_lengths, [4, 7, 4])
    ep = buf.get_episode(1)
    for k, v in arrays.items():
        np.testing.assert_array_equal(ep[k], v[4:11])


# ---------------------------------------------------------------------- crash safety
def _crash_on_append(monkeypatch, n_call, resize_first=False):
    """Make the ``n_call``-th ``zarr.Array.append`` raise (after resizing, with ``resize_first``),
    as a kill at that point of ``add_episode`` would leave the store."""
    real, calls = zarr.Array.append, {"n": 0}

    def append(self, data, axis=0):
        calls["n"] += 1
        if calls["n"] == n_call:
            if resize_first:
                self.resize((self.shape[0] + len(data), *self.shape[1:]))
            raise KeyboardInterrupt("simulated crash")
        return real(self, data, axis=axis)

    monkeypatch.setattr(zarr.Array, "append", append)


def _add_crashing(path, episode, monkeypatch, n_call, resize_first=False):
    buf = ReplayBuffer.open(path, mode="a")
    with monkeypatch.context() as m:
        _crash_on_append(m, n_call, resize_first)
        with pytest.raises(KeyboardInterrupt):
            buf.add_episode(episode)
    buf.close()


def test_interrupted_append_data_longer_than_ends(filled, rng, caplog, monkeypatch):
    """A crash after two of the four data arrays grew, before episode_ends was extended."""
    path, episodes = filled
    extra = _episode(rng, 6, image=True)
    _add_crashing(path, extra, monkeypatch, n_call=3)
    with caplog.at_level(logging.WARNING):
        ro = ReplayBuffer.open(path, mode="r")  # read mode: tail ignored
    assert "interrupted append" in caplog.text
    assert ro.n_episodes == 3 and ro.n_steps == 17 and ro["agent_pos"].shape[0] == 23
    for i, ep in enumerate(episodes):
        for k in ep:
            np.testing.assert_array_equal(ro.get_episode(i)[k], ep[k])
    rw = ReplayBuffer.open(path, mode="a")  # append mode: the recorded tail is truncated
    assert all(rw[k].shape[0] == 17 for k in rw.keys())
    rw.add_episode(extra)
    again = ReplayBuffer.open(path)
    np.testing.assert_array_equal(again.episode_ends, [5, 14, 17, 23])
    for k in extra:
        np.testing.assert_array_equal(again.get_episode(3)[k], extra[k])
    np.testing.assert_array_equal(again.get_episode(2)["pixels"], episodes[2]["pixels"])


def test_interrupted_append_ends_resized_not_written(filled, rng, monkeypatch):
    """Crash between resizing meta/episode_ends and writing its new entry."""
    path, episodes = filled
    extra = _episode(rng, 2, image=True)
    _add_crashing(path, extra, monkeypatch, n_call=5, resize_first=True)
    assert zarr.open_group(str(path))["meta/episode_ends"].shape == (4,)
    assert ReplayBuffer.open(path).n_episodes == 3
    rw = ReplayBuffer.open(path, mode="a")
    rw.add_episode(extra)
    np.testing.assert_array_equal(ReplayBuffer.open(path).episode_ends, [5, 14, 17, 19])


def test_unrecorded_tail_is_never_truncated(filled, rng):
    """Data longer than episode_ends[-1] in a ttfkit store with no record of an interrupted
    append (written by something else): appending refuses and deletes nothing."""
    path, episodes = filled
    root = zarr.open_group(str(path), mode="r+")
    for k, v in _episode(rng, 4, image=True).items():
        root["data"][k].append(v)
    with pytest.raises(ValueError, match=r"buf\.zarr: data beyond meta/episode_ends\[-1\]=17.*"
                                         r"not provably an interrupted append"):
        ReplayBuffer.open(path, mode="a")
    assert all(root["data"][k].shape[0] == 21 for k in episodes[0])


def _dp_store(path, arrays, ends, pending_slot):
    """A store as Diffusion Policy's replay_buffer.py writes it (zarr 2 API, fill value 0 for
    episode_ends, no compressor there), killed in add_episode after the data arrays and the
    episode_ends resize when ``pending_slot``."""
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    data = root.create_group("data")
    for k, v in arrays.items():
        data.create_array(k, data=v, chunks=(8, *v.shape[1:]))
    meta = root.create_group("meta")
    e = meta.create_array("episode_ends", shape=(len(ends),), dtype=np.int64, chunks=(2,),
                          fill_value=0, compressors=None)
    e[:] = ends
    if pending_slot:
        e.resize((len(ends) + 1,))
    return path


def test_dp_store_interrupted_mid_append_opens_like_a_ttfkit_one(tmp_path, rng):
    ends = np.array([4, 11, 15], dtype=np.int64)
    arrays = {"action": rng.normal(size=(19, 2)).astype(np.float32),
              "state": rng.normal(size=(19, 5)).astype(np.float32)}
    for chunk_boundary, n_ends in ((False, 3), (True, 4)):
        ends_now = np.array([4, 11, 15, 17][:n_ends], dtype=np.int64)
        arrs = {k: v[: 19 if n_ends == 3 else 21] if n_ends == 3 else
                np.concatenate([v, v[:2]]) for k, v in arrays.items()}
        path = _dp_store(tmp_path / f"dp{n_ends}.zarr", arrs, ends_now, pending_slot=True)
        assert zarr.open_group(str(path))["meta/episode_ends"][-1] == 0  # DP's fill value
        ro = ReplayBuffer.open(path)
        np.testing.assert_array_equal(ro.episode_ends, ends_now)
        rw = ReplayBuffer.open(path, mode="a")
        assert rw.n_episodes == n_ends and all(rw[k].shape[0] == ends_now[-1] for k in rw.keys())
        extra = {k: v[:3] for k, v in arrays.items()}
        rw.add_episode(extra)
        again = ReplayBuffer.open(path)
        np.testing.assert_array_equal(again.episode_ends, [*ends_now, ends_now[-1] + 3])
        for k in arrays:
            np.testing.assert_array_equal(again[k][: ends_now[-1]], arrs[k][: ends_now[-1]])


def test_missing_episode_ends_chunk_is_an_error_and_deletes_nothing(filled):
    """Before: the missing chunk read as unwritten slots and reopening for appending resized every
    data array to zero."""
    path, episodes = filled
    (path / "meta" / "episode_ends" / "0").unlink()
    for mode in ("r", "a"):
        with pytest.raises(ValueError, match=r"buf\.zarr: meta/episode_ends: chunk 0 .*missing"):
            ReplayBuffer.open(path, mode=mode)
    root = zarr.open_group(str(path))
    for k in episodes[0]:
        np.testing.assert_array_equal(root["data"][k][:], np.concatenate([e[k] for e in episodes]))


def test_missing_data_chunk_is_an_error_not_zeros(filled):
    path, _ = filled
    (path / "data" / "action" / "0.0").unlink()
    with pytest.raises(ValueError, match=r"buf\.zarr: data/action: chunk 0 .*missing.*action/0\.0"):
        ReplayBuffer.open(path)


def test_all_zero_chunks_are_written(tmp_path):
    """zarr skips chunks equal to the fill value by default; ttfkit writes them, so an absent chunk
    file always means a loss."""
    buf = ReplayBuffer.create(tmp_path / "z.zarr")
    buf.add_episode({"action": np.zeros((5, 2), np.float32), "done": np.zeros((5,), bool)})
    assert (tmp_path / "z.zarr" / "data" / "done" / "0").is_file()
    assert ReplayBuffer.open(tmp_path / "z.zarr").get_episode(0)["done"].tolist() == [False] * 5


def test_second_writer_gets_a_clear_error(filled, rng):
    path, _ = filled
    first = ReplayBuffer.open(path, mode="a")
    with pytest.raises(ttfkit_rb.StoreLockedError, match=rf"buf\.zarr: another process is writing "
                                                        rf"this store \(pid {os.getpid()}"):
        ReplayBuffer.open(path, mode="a")
    ReplayBuffer.open(path, mode="r")  # readers take no lock
    first.close()
    with ReplayBuffer.open(path, mode="a") as second:
        second.add_episode(_episode(rng, 2, image=True))
    assert ReplayBuffer.open(path).n_episodes == 4


def test_two_creators_of_one_path_cannot_both_succeed(tmp_path):
    path = tmp_path / "c.zarr"
    first = ReplayBuffer.create(path)
    with pytest.raises(FileExistsError, match=r"c\.zarr"):
        ReplayBuffer.create(path)
    with pytest.raises(ttfkit_rb.StoreLockedError, match=r"c\.zarr"):  # first still writes it
        ReplayBuffer.create(path, overwrite=True)
    first.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr"]  # no temporary left behind


@pytest.mark.parametrize("key", ["", "a/b", ".zarray", "x\\y", 3])
def test_invalid_key_names_are_refused(tmp_path, key):
    buf = ReplayBuffer.create(tmp_path / "k.zarr")
    with pytest.raises(ValueError, match=r"k\.zarr: add_episode: invalid key"):
        buf.add_episode({key: np.zeros((3, 2), np.float32)})
    assert ReplayBuffer.open(tmp_path / "k.zarr").keys() == []


def test_overwrite_replaces_only_a_ttfkit_store(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match=r"mine: refusing to replace it: it is a folder "
                                              r"without ttfkit's marker"):
        ReplayBuffer.create(user, overwrite=True)
    with pytest.raises(FileExistsError, match="mine: refusing"):
        with ReplayBuffer.build(user, overwrite=True):
            pass
    assert (user / "notes.txt").read_text() == "precious"
    dp = _dp_store(tmp_path / "dp.zarr", {"a": np.ones((3, 1), np.float32)},
                   np.array([3]), pending_slot=False)
    with pytest.raises(FileExistsError, match="dp.zarr: refusing"):
        ReplayBuffer.create(dp, overwrite=True)
    ReplayBuffer.create(tmp_path / "t.zarr").close()
    ReplayBuffer.create(tmp_path / "t.zarr", overwrite=True).close()


def test_corrupt_chunk_and_bad_json_name_the_file(filled):
    path, _ = filled
    chunk = path / "data" / "agent_pos" / "0.0"
    chunk.write_bytes(np.random.default_rng(1).bytes(chunk.stat().st_size))
    buf = ReplayBuffer.open(path)  # presence checks only; the chunk is decoded on read
    with pytest.raises(ValueError, match=r"buf\.zarr: data/agent_pos: cannot decode"):
        buf.get_episode(0)
    problems = ReplayBuffer.verify(path)
    assert len(problems) == 1 and "data/agent_pos: chunk 0 (rows 0..16) cannot be decoded" in problems[0]
    (path / "data" / "action" / ".zarray").write_text("{not json")
    with pytest.raises(ValueError, match=r"buf\.zarr/data/action/\.zarray: unreadable zarr metadata"):
        ReplayBuffer.open(path)
    assert "action/.zarray" in ReplayBuffer.verify(path)[0]


# ---------------------------------------------------------------------- errors on open
def _raw_store(path, ends, lengths=None, with_ends=True):
    with zarr.config.set({"array.write_empty_chunks": True}):  # as zarr 2 (DP) writes
        root = zarr.open_group(str(path), mode="w", zarr_format=2)
        n = int(ends[-1]) if len(ends) else 0
        data = root.create_group("data")
        data.create_array("action", data=np.zeros((n if lengths is None else lengths, 2), np.float32))
        if with_ends:
            root.create_group("meta").create_array("episode_ends", data=np.asarray(ends, np.int64))
        return path


def test_error_missing_episode_ends(tmp_path):
    path = _raw_store(tmp_path / "s.zarr", [3], with_ends=False)
    with pytest.raises(KeyError, match=r"s\.zarr.*meta/episode_ends"):
        ReplayBuffer.open(path)


def test_error_non_monotonic_ends(tmp_path):
    path = _raw_store(tmp_path / "s.zarr", [3, 8, 6, 9])
    with pytest.raises(ValueError, match=r"s\.zarr.*episode_ends.*entry 2 is 6 after 8"):
        ReplayBuffer.open(path)


@pytest.mark.parametrize("case", ["end_beyond_all_data", "one_key_shorter_than_last_end"])
def test_error_ends_out_of_range_or_data_length_differs(tmp_path, case):
    path = _raw_store(tmp_path / "s.zarr", [3, 8], lengths=8 if case.startswith("one") else 5)
    if case.startswith("one"):  # action matches the last end, state is shorter
        root = zarr.open_group(str(path), mode="r+")
        root["data"].create_array("state", data=np.zeros((7, 4), np.float32))
    key, n = ("state", 7) if case.startswith("one") else ("action", 5)
    with pytest.raises(ValueError, match=rf"s\.zarr: data/{key} has length {n} but "
                                         rf"meta/episode_ends\[-1\] = 8"):
        ReplayBuffer.open(path)


def test_error_zero_or_negative_first_end(tmp_path):
    path = _raw_store(tmp_path / "s.zarr", [0, 4])
    with pytest.raises(ValueError, match=r"s\.zarr.*entry 0 is 0"):
        ReplayBuffer.open(path)


def test_error_unknown_key(filled):
    path, _ = filled
    with pytest.raises(KeyError, match=r"buf\.zarr.*'nope'.*available"):
        ReplayBuffer.open(path)["nope"]
    with pytest.raises(KeyError, match="nope"):
        ReplayBuffer.open(path).get_episode(0, keys=["action", "nope"])


def test_error_not_a_store(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        ReplayBuffer.open(tmp_path / "missing.zarr")
    with pytest.raises(ValueError, match="mode"):
        ReplayBuffer.open(tmp_path, mode="w")


# ---------------------------------------------------------------------- errors on add_episode
@pytest.fixture
def one_episode(tmp_path, rng):
    buf = ReplayBuffer.create(tmp_path / "b.zarr")
    buf.add_episode(_episode(rng, 4))
    return buf


def _bad_add(buf, episode, exc, pattern):
    before = {k: buf[k].shape for k in buf.keys()}
    with pytest.raises(exc, match=pattern):
        buf.add_episode(episode)
    after = ReplayBuffer.open(buf.path)
    assert after.n_episodes == 1
    assert {k: after[k].shape for k in after.keys()} == before  # nothing was written


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_error_non_finite_action(one_episode, rng, bad):
    ep = _episode(rng, 5)
    ep["action"][3, 1] = bad
    _bad_add(one_episode, ep, ValueError, r"b\.zarr.*'action'.*non-finite.*\(3, 1\)")


def test_error_missing_key(one_episode, rng):
    ep = _episode(rng, 5)
    del ep["environment_state"]
    _bad_add(one_episode, ep, KeyError, r"b\.zarr.*missing \['environment_state'\]")


def test_error_extra_key(one_episode, rng):
    ep = {**_episode(rng, 5), "reward": np.zeros(5, np.float32)}
    _bad_add(one_episode, ep, KeyError, r"unexpected \['reward'\]")


def test_error_unequal_lengths(one_episode, rng):
    ep = _episode(rng, 5)
    ep["action"] = ep["action"][:4]
    _bad_add(one_episode, ep, ValueError, r"different lengths.*'action': 4")


def test_error_wrong_dimensionality(one_episode, rng):
    ep = _episode(rng, 5)
    ep["agent_pos"] = ep["agent_pos"][:, :, None]
    _bad_add(one_episode, ep, ValueError, r"'agent_pos' has 3 dims \(5, 4, 1\).*2 dims")


def test_error_trailing_shape(one_episode, rng):
    ep = _episode(rng, 5)
    ep["action"] = np.zeros((5, 7), np.float32)
    _bad_add(one_episode, ep, ValueError, r"'action' trailing shape \(7,\) != stored \(3,\)")


def test_error_dtype_mismatch(one_episode, rng):
    ep = _episode(rng, 5)
    ep["action"] = ep["action"].astype(np.float64)
    _bad_add(one_episode, ep, ValueError, r"'action' dtype float64 != stored float32")


def test_error_images_must_be_uint8_channel_last(tmp_path, rng):
    buf = ReplayBuffer.create(tmp_path / "img.zarr")
    ep = _episode(rng, 3)
    ep["pixels"] = np.zeros((3, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"'pixels'.*uint8 \(T, H, W, C\)"):
        buf.add_episode(ep)
    assert ReplayBuffer.open(buf.path).keys() == []


def test_error_scalar_and_empty(tmp_path, rng):
    buf = ReplayBuffer.create(tmp_path / "e.zarr")
    with pytest.raises(ValueError, match="scalar"):
        buf.add_episode({"action": np.float32(1.0)})
    with pytest.raises(ValueError, match="length 0"):
        buf.add_episode({"action": np.zeros((0, 2), np.float32)})
    with pytest.raises(ValueError, match="non-empty"):
        buf.add_episode({})
