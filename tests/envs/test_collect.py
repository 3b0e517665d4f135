"""Collection: worker-count determinism, resume, crash recovery, DART noise labels, provenance."""

import numpy as np
import pytest

import ttfkit.envs as envs
from ttfkit.data import ReplayBuffer
from ttfkit.envs.collect import collect, episode_seed

REACH = "ttfkit/metaworld-reach-v3"


def _arrays(path):
    buf = ReplayBuffer.open(path)
    return {k: buf[k][: buf.n_steps] for k in buf.keys()}, buf.episode_ends[:].tolist(), dict(buf.attrs)


def _same(a, b):
    assert a[1] == b[1]
    assert a[0].keys() == b[0].keys()
    for key in a[0]:
        np.testing.assert_array_equal(a[0][key], b[0][key], err_msg=key)


def test_same_store_with_one_and_two_workers(tmp_path):
    kwargs = dict(seed=3, noise=0.05, max_steps=40, keep="all")
    r1 = collect(REACH, 3, tmp_path / "w1.zarr", workers=1, **kwargs)
    r2 = collect(REACH, 3, tmp_path / "w2.zarr", workers=2, **kwargs)
    one, two = _arrays(tmp_path / "w1.zarr"), _arrays(tmp_path / "w2.zarr")
    _same(one, two)
    assert r1.kept == r2.kept == 3 and r1.attempted == 3
    attrs = one[2]
    assert attrs["attempted_seeds"] == [episode_seed(3, i) for i in range(3)] == [3_000_000, 3_000_001, 3_000_002]
    assert attrs["env_id"] == REACH and attrs["noise"] == 0.05
    assert attrs["expert"] == "metaworld.policies.SawyerReachV3Policy"
    assert attrs["versions"]["mujoco"] == "3.3.0" and "metaworld" in attrs["versions"]
    # layouts of different episodes differ (fresh layout per seed): first goal positions
    goals = [one[0]["environment_state"][start, 14:] for start in [0] + one[1][:-1]]
    assert np.linalg.norm(goals[0] - goals[1]) > 1e-3


def test_resume_and_interrupt_give_the_uninterrupted_store(tmp_path):
    kwargs = dict(seed=0, max_steps=30, keep="all")
    collect(REACH, 4, tmp_path / "full.zarr", **kwargs)

    collect(REACH, 2, tmp_path / "resumed.zarr", **kwargs)  # partial run, then extend
    report = collect(REACH, 4, tmp_path / "resumed.zarr", **kwargs)
    assert report.new_attempted == 2 and report.attempted == 4

    def stop_after_two(n, success, kept):
        if n == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect(REACH, 4, tmp_path / "interrupted.zarr", on_episode=stop_after_two, **kwargs)
    assert ReplayBuffer.open(tmp_path / "interrupted.zarr").n_episodes == 2  # completed ones kept
    collect(REACH, 4, tmp_path / "interrupted.zarr", **kwargs)
    full = _arrays(tmp_path / "full.zarr")
    _same(full, _arrays(tmp_path / "resumed.zarr"))
    _same(full, _arrays(tmp_path / "interrupted.zarr"))
    assert collect(REACH, 4, tmp_path / "full.zarr", **kwargs).new_attempted == 0  # nothing left

    with pytest.raises(ValueError, match="noise"):
        collect(REACH, 4, tmp_path / "full.zarr", seed=0, max_steps=30, keep="all", noise=0.1)


def test_noise_labels_are_clean_expert_actions(tmp_path):
    sigma = 0.3
    collect(REACH, 2, tmp_path / "n.zarr", seed=1, noise=sigma, max_steps=25, keep="all")
    buf = ReplayBuffer.open(tmp_path / "n.zarr")
    expert = envs.make_expert(REACH)
    env = envs.make_env(REACH, max_episode_steps=25)
    for i in range(buf.n_episodes):
        ep = buf.get_episode(i)
        # label = expert on the recorded observation
        labels = expert({"agent_pos": ep["agent_pos"], "environment_state": ep["environment_state"]})
        np.testing.assert_allclose(ep["action"], labels, atol=1e-6)
        # executed = clip(label + sigma * N(0, 1)) with the episode's own generator
        rng = np.random.default_rng([episode_seed(1, i), 1])
        noise = sigma * rng.standard_normal(ep["action"].shape)
        np.testing.assert_allclose(ep["executed_action"], np.clip(ep["action"] + noise, -1, 1), atol=1e-6)
        assert np.abs(ep["executed_action"] - ep["action"]).mean() > 0.1
        # replaying the executed actions reproduces the recorded observations
        obs, _ = env.reset(seed=episode_seed(1, i))
        for t in range(len(ep["action"])):
            np.testing.assert_allclose(obs["agent_pos"], ep["agent_pos"][t], atol=1e-6)
            obs, *_ = env.step(ep["executed_action"][t])
    env.close()


def test_keep_modes_and_bad_arguments(tmp_path):
    # 5 steps are too few to reach: every episode fails
    report = collect(REACH, 2, tmp_path / "s.zarr", max_steps=5)
    assert report.kept == 0 and report.failed == 2 and report.attempted == 2
    report = collect(REACH, 2, tmp_path / "f.zarr", max_steps=5, keep="failures")
    buf = ReplayBuffer.open(tmp_path / "f.zarr")
    assert report.kept == 2 and buf.n_episodes == 2 and buf.episode_lengths.tolist() == [5, 5]
    assert not buf["is_success"][:].any()
    with pytest.raises(ValueError, match="keep"):
        collect(REACH, 2, tmp_path / "x.zarr", keep="best")
    with pytest.raises(ValueError, match="noise"):
        collect(REACH, 2, tmp_path / "x.zarr", noise=-1.0)
    with pytest.raises(KeyError, match="unknown env id"):
        collect("ttfkit/nope-v1", 2, tmp_path / "x.zarr")


def test_pixel_collection_records_images(tmp_path):
    report = collect("ttfkit/fetch-push-v4", 1, tmp_path / "p.zarr", seed=4, pixels=True,
                     env_kwargs={"image_size": 32})
    buf = ReplayBuffer.open(tmp_path / "p.zarr")
    ep = buf.get_episode(0)
    assert report.kept == 1 and buf.attrs["pixels"] is True
    assert ep["pixels"].shape == (len(ep["action"]), 32, 32, 3) and ep["pixels"].dtype == np.uint8
    assert np.abs(ep["pixels"][-1].astype(int) - ep["pixels"][0]).sum() > 0  # the scene changed
