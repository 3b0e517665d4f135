"""Multi-camera pixel observations: one ``pixels_<camera>`` key per camera, frames identical to the
env's own ``pixels`` from that camera, and ``ttf collect --pixels --camera A B --no-environment-state``
storing exactly those keys without changing the expert's data."""

import numpy as np
import pytest

import ttfkit.envs as envs
from ttfkit.data import ReplayBuffer
from ttfkit.envs.collect import collect
from ttfkit.envs.rendering import CameraObservations
from ttfkit.scripts.cli import main as ttf

REACH = "ttfkit/metaworld-reach-v3"


@pytest.mark.parametrize("env_id,cameras", [(REACH, ["corner", "gripperPOV"]),
                                            ("ttfkit/fetch-push-v4", ["head_camera_rgb", "external_camera_0"])])
def test_each_camera_is_its_own_key_and_matches_the_envs_pixels(env_id, cameras):
    env = CameraObservations(envs.make_env(env_id), cameras, image_size=32)
    single = [envs.make_env(env_id, pixels=True, image_size=32, camera=c) for c in cameras]
    obs, _ = env.reset(seed=5)
    refs = [e.reset(seed=5)[0]["pixels"] for e in single]
    action = np.full(4, 0.5, dtype=np.float32)
    for _ in range(3):  # frames follow the simulation
        obs, *_ = env.step(action)
        refs = [e.step(action)[0]["pixels"] for e in single]
    keys = [f"pixels_{c}" for c in cameras]
    assert set(obs) == {"agent_pos", "environment_state", *keys}
    assert env.observation_space.contains(obs)
    for key, ref in zip(keys, refs):
        assert obs[key].shape == (32, 32, 3) and obs[key].dtype == np.uint8
        np.testing.assert_array_equal(obs[key], ref, err_msg=key)
    assert not np.array_equal(obs[keys[0]], obs[keys[1]])
    for e in (env, *single):
        e.close()


def test_camera_errors_name_the_camera():
    with pytest.raises(KeyError, match="nope"):
        CameraObservations(envs.make_env(REACH), ["corner", "nope"], image_size=16)
    with pytest.raises(ValueError, match="distinct"):
        CameraObservations(envs.make_env(REACH), ["corner", "corner"], image_size=16)


def test_multi_camera_collect_stores_one_key_per_camera_and_the_same_expert_data(tmp_path, capsys):
    out = tmp_path / "px.zarr"
    assert ttf(["collect", "--env", REACH, "--episodes", "1", "--out", str(out), "--max-steps", "30",
                "--keep", "all", "--pixels", "--image-size", "24", "--camera", "corner,gripperPOV",
                "--no-environment-state"]) == 0
    assert "frames/s over 2 camera(s)" in capsys.readouterr().out
    buf = ReplayBuffer.open(out)
    assert set(buf.keys()) == {"agent_pos", "pixels_corner", "pixels_gripperPOV", "action", "executed_action",
                               "reward", "is_success"}
    assert buf["pixels_corner"].shape == (buf.n_steps, 24, 24, 3)
    assert buf.attrs["env_kwargs"]["cameras"] == ["corner", "gripperPOV"] and not buf.attrs["environment_state"]
    collect(REACH, 1, tmp_path / "state.zarr", max_steps=30, keep="all")  # same seed, no cameras
    ref = ReplayBuffer.open(tmp_path / "state.zarr")
    for key in ("agent_pos", "action"):
        np.testing.assert_array_equal(buf[key][:], ref[key][:], err_msg=key)
    with pytest.raises(ValueError, match="environment_state"):  # resume with other settings is refused
        collect(REACH, 2, out, max_steps=30, keep="all", env_kwargs={"image_size": 24,
                                                                    "cameras": ["corner", "gripperPOV"]})
