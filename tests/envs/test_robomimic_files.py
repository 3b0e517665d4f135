"""From a robomimic HDF5 file (written here with h5py in robomimic's layout, robosuite 1.4 env_args) to
its env: env_args round trip through `ttf data import-robomimic`, the controller mapping, the clear
errors, and `ttf eval` on a checkpoint trained from the store without an env id."""

import copy
import json

import h5py
import numpy as np
import pytest

from ttfkit.data import ReplayBuffer, import_robomimic
from ttfkit.envs import make_env
from ttfkit.envs.robomimic import ControllerMappingError, env_from_args, env_from_store, map_controller_config
from ttfkit.scripts.cli import main as ttf

pytest.importorskip("robosuite", reason="robosuite extra (make setup installs it)")

# What robomimic v0.3 wrote for Lift with robosuite 1.4.1 (robomimic.envs.env_robosuite.serialize).
OSC_1_4 = {"type": "OSC_POSE", "input_max": 1, "input_min": -1,
           "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5], "output_min": [-0.05, -0.05, -0.05, -0.5, -0.5, -0.5],
           "kp": 150, "damping": 1, "impedance_mode": "fixed", "kp_limits": [0, 300], "damping_limits": [0, 10],
           "position_limits": None, "orientation_limits": None, "uncouple_pos_ori": True, "control_delta": True,
           "interpolation": None, "ramp_ratio": 0.2}
ENV_ARGS = {"env_name": "Lift", "env_version": "1.4.1", "type": 1,
            "env_kwargs": {"has_renderer": False, "has_offscreen_renderer": True, "ignore_done": True,
                           "use_object_obs": True, "use_camera_obs": True, "control_freq": 20,
                           "controller_configs": OSC_1_4, "robots": ["Panda"], "camera_depths": False,
                           "camera_heights": 84, "camera_widths": 84, "reward_shaping": False,
                           "camera_names": ["agentview", "robot0_eye_in_hand"], "render_gpu_device_id": 0}}
OBS = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2, "object": 10}


def _write_file(path, env_args=ENV_ARGS, obs=OBS, n_demos=3, seed=0):
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        total = 0
        for i in range(n_demos):
            t = 12 + i
            demo = data.create_group(f"demo_{i}")
            demo.attrs["num_samples"] = t
            for key, dim in obs.items():
                demo.create_dataset(f"obs/{key}", data=rng.normal(size=(t, dim)))
                demo.create_dataset(f"next_obs/{key}", data=rng.normal(size=(t, dim)))
            demo.create_dataset("actions", data=rng.uniform(-1, 1, (t, 7)))
            demo.create_dataset("rewards", data=np.zeros(t))
            demo.create_dataset("dones", data=np.r_[np.zeros(t - 1), 1].astype(np.int64))
            demo.create_dataset("states", data=rng.normal(size=(t, 32)))
            total += t
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps(env_args)
    return path


def test_env_args_round_trip_and_controller_mapping(tmp_path):
    store = tmp_path / "lift.zarr"
    assert ttf(["data", "import-robomimic", str(_write_file(tmp_path / "lift.hdf5")), str(store)]) == 0
    assert ReplayBuffer.open(store).attrs["env_args"] == ENV_ARGS
    env_id, kwargs = env_from_store(store, obs_keys=list(OBS))
    assert env_id == "ttfkit/robomimic-lift-v0"
    ctrl = kwargs["controller"]
    assert (ctrl["damping_ratio"], ctrl["damping_ratio_limits"], ctrl["input_type"], ctrl["input_ref_frame"]) \
        == (1, [0, 10], "delta", "world")
    assert "damping" not in ctrl and "control_delta" not in ctrl
    assert kwargs["robosuite_kwargs"] == {"control_freq": 20, "robots": ["Panda"], "reward_shaping": False}
    env = make_env(env_id, **kwargs)
    obs, _ = env.reset(seed=0)
    for key, dim in OBS.items():
        assert obs[key].shape == (dim,), key
    # the controller the env runs with is the mapped one
    part = env.unwrapped._env.robots[0].composite_controller.part_controllers["right"]
    assert part.input_ref_frame == "world" and part.input_type == "delta"
    np.testing.assert_allclose(part.kd, 2 * np.sqrt(part.kp) * 1)  # damping_ratio 1
    env.close()


def test_mapping_changes_what_it_must_and_nothing_else():
    new = map_controller_config(OSC_1_4)
    for key in ("kp", "output_max", "output_min", "kp_limits", "uncouple_pos_ori", "ramp_ratio", "impedance_mode"):
        assert new[key] == OSC_1_4[key]
    absolute = map_controller_config({**OSC_1_4, "control_delta": False, "damping": 0.7})
    assert absolute["input_type"] == "absolute" and absolute["damping_ratio"] == 0.7
    composite = {"type": "BASIC", "body_parts": {"right": {**new, "kp": 200, "gripper": {"type": "GRIP"}}}}
    assert map_controller_config(composite)["kp"] == 200


@pytest.mark.parametrize("change,field", [
    ({"type": "JOINT_VELOCITY"}, "controller_configs.type='JOINT_VELOCITY'"),
    ({"interpolation": "cubic"}, "controller_configs.interpolation='cubic'"),
    ({"control_ori": False}, "controller_configs.control_ori=False"),
])
def test_unmappable_controller_names_the_field(change, field):
    args = copy.deepcopy(ENV_ARGS)
    args["env_kwargs"]["controller_configs"].update(change)
    with pytest.raises(ControllerMappingError, match=f"env_args.env_kwargs.{field}".replace(".", r"\.")
                       .replace("(", r"\(").replace("[", r"\[")):
        env_from_args(args)


def test_unknown_task_and_cameras_name_the_field():
    with pytest.raises(ValueError, match=r"env_args\.env_name='Wipe'"):
        env_from_args({**ENV_ARGS, "env_name": "Wipe"})
    wide = copy.deepcopy(ENV_ARGS)
    wide["env_kwargs"]["camera_widths"] = 128
    with pytest.raises(ValueError, match=r"camera_heights=84 / camera_widths=128"):
        env_from_args(wide, obs_keys=["agentview_image"])
    assert env_from_args(wide, obs_keys=["object"])[1].get("image_size") is None  # no image key: fine


def test_observation_key_mismatch_names_both_sides(tmp_path):
    obs = {**OBS, "robot0_eef_vel_lin": 3}  # a key robosuite 1.5 does not produce
    store = tmp_path / "bad.zarr"
    import_robomimic(_write_file(tmp_path / "bad.hdf5", obs=obs), store)
    env_id, kwargs = env_from_store(store, obs_keys=list(obs))
    with pytest.raises(KeyError, match=r"\['robot0_eef_vel_lin'\].*asks for \['robot0_eef_pos'.*provides \["):
        make_env(env_id, **kwargs)


def test_store_without_env_args_is_a_clear_error(tmp_path):
    store = tmp_path / "plain.zarr"
    with ReplayBuffer.build(store) as buf:
        buf.add_episode({"agent_pos": np.zeros((3, 2), np.float32), "action": np.zeros((3, 7), np.float32)})
    with pytest.raises(ValueError, match=r"plain\.zarr: the store has no env_args"):
        env_from_store(store)


def test_ttf_eval_builds_the_env_from_the_training_store(tmp_path, capsys):
    """A checkpoint whose training dataset is a robomimic store is evaluated without --env."""
    import torch

    from ttfkit.policies import make_policy
    from ttfkit.policies.checkpoint import save

    store = tmp_path / "lift.zarr"
    import_robomimic(_write_file(tmp_path / "lift.hdf5"), store)
    torch.manual_seed(0)
    shapes = {"robot0_eef_pos": (3,), "object": (10,)}
    policy = make_policy("flow", obs_shapes=shapes, action_dim=7, horizon=4, n_obs_steps=1, n_action_steps=2,
                         num_steps=1, backbone="mlp")
    ckpt = tmp_path / "ckpt"
    save(policy, ckpt, metadata={"train_config": {"dataset": str(store), "obs_keys": list(shapes)}})
    out = tmp_path / "eval.json"
    assert ttf(["eval", "--policy", str(ckpt), "--episodes", "1", "--n-envs", "1", "--max-steps", "3",
                "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["env_id"] == "ttfkit/robomimic-lift-v0" and data["lengths"] == [3]
    spec = json.loads(data["env_spec"])
    assert spec["kwargs"]["controller"]["input_ref_frame"] == "world"
    assert spec["kwargs"]["obs_keys"] == ["robot0_eef_pos", "object"]
    # the expert needs no checkpoint: --dataset names the env
    assert ttf(["eval", "--policy", "expert", "--dataset", str(store), "--episodes", "1", "--n-envs", "1"]) == 0
    assert "success 1/1" in capsys.readouterr().out


def test_ttf_gap_on_an_imported_store_needs_no_env(tmp_path):
    """`ttf gap --dataset` on a robomimic store trains on the store and evaluates every checkpoint in the
    env its env_args describe (mapped controller, the store's observation keys)."""
    store = tmp_path / "lift.zarr"
    import_robomimic(_write_file(tmp_path / "lift.hdf5"), store)
    out = tmp_path / "gap"
    argv = ["gap", "--dataset", str(store), "--obs-keys", "robot0_eef_pos", "object", "--optims", "adamw",
            "--seeds", "1", "--steps", "2", "--ckpt-every", "2", "--batch", "8", "--eval-episodes", "1",
            "--eval-max-steps", "3", "--n-envs", "1", "--workers", "0", "--out", str(out)]
    assert ttf(argv) == 0
    ckpt = out / "runs" / "adamw_lr0.001_seed0" / "checkpoints" / "step_000002"
    data = json.loads((ckpt / "eval.json").read_text())
    assert data["env_id"] == "ttfkit/robomimic-lift-v0" and data["lengths"] == [3]
    kwargs = json.loads(data["env_spec"])["kwargs"]
    assert kwargs["controller"]["input_ref_frame"] == "world" and kwargs["obs_keys"] == ["robot0_eef_pos", "object"]
    saved = json.loads((out / "gap_config.json").read_text())
    assert saved["env"] == "ttfkit/robomimic-lift-v0" and saved["env_kwargs"]["obs_keys"] == ["robot0_eef_pos",
                                                                                              "object"]
    train_cfg = json.loads((ckpt.parent.parent / "train_config.json").read_text())
    assert train_cfg["obs_keys"] == ["robot0_eef_pos", "object"] and train_cfg["dataset"] == str(store)


def test_ttf_gap_on_a_store_without_an_env_fails_before_training(tmp_path, capsys):
    plain = tmp_path / "plain.zarr"
    with ReplayBuffer.build(plain) as buf:
        buf.add_episode({"agent_pos": np.zeros((3, 2), np.float32), "action": np.zeros((3, 7), np.float32)})
    out = tmp_path / "gap"
    assert ttf(["gap", "--dataset", str(plain), "--out", str(out)]) == 2
    assert "plain.zarr: the store names no env" in capsys.readouterr().err
    store = tmp_path / "bad.zarr"  # a key robosuite 1.5 cannot produce: an error before any run is trained
    import_robomimic(_write_file(tmp_path / "bad.hdf5", obs={**OBS, "robot0_eef_vel_lin": 3}), store)
    assert ttf(["gap", "--dataset", str(store), "--obs-keys", "robot0_eef_vel_lin", "--out", str(out)]) == 2
    assert "robot0_eef_vel_lin" in capsys.readouterr().err and not (out / "runs").exists()


def test_env_for_a_collected_store(tmp_path):
    """A `ttf collect` store names its env id; keys it cannot have are errors naming the store."""
    from ttfkit.envs import collect
    from ttfkit.envs.from_store import env_for_store

    store = tmp_path / "lift_demos.zarr"
    collect("ttfkit/robomimic-lift-v0", 1, store, max_steps=5, keep="all")
    assert env_for_store(store, ["agent_pos", "environment_state"]) == ("ttfkit/robomimic-lift-v0", {})
    with pytest.raises(ValueError, match=r"lift_demos\.zarr: the policy reads 'pixels' but the store was collected "
                                         r"without --pixels"):
        env_for_store(store, ["pixels"])
    with pytest.raises(ValueError, match=r"lift_demos\.zarr: observation keys \['object'\] are not produced"):
        env_for_store(store, ["agent_pos", "object"])
    # an imported store goes through env_args, exactly as env_from_store
    imported = tmp_path / "lift.zarr"
    import_robomimic(_write_file(tmp_path / "lift.hdf5"), imported)
    assert env_for_store(imported, list(OBS)) == env_from_store(imported, list(OBS))


def test_ttf_eval_builds_the_env_a_collected_store_names(tmp_path, capsys):
    """`ttf eval --dataset` resolves the env as `ttf gap --dataset` does: a `ttf collect` store's env id,
    and a store that names no env is an error naming it."""
    from ttfkit.envs import collect

    store = tmp_path / "reach.zarr"
    collect("ttfkit/metaworld-reach-v3", 1, store, max_steps=5, keep="all")
    out = tmp_path / "eval.json"
    assert ttf(["eval", "--expert", "--dataset", str(store), "--episodes", "1", "--n-envs", "1", "--max-steps", "5",
                "--out", str(out)]) == 0
    assert json.loads(out.read_text())["env_id"] == "ttfkit/metaworld-reach-v3"
    plain = tmp_path / "plain.zarr"
    with ReplayBuffer.build(plain) as buf:
        buf.add_episode({"agent_pos": np.zeros((3, 2), np.float32), "action": np.zeros((3, 7), np.float32)})
    capsys.readouterr()
    assert ttf(["eval", "--expert", "--dataset", str(plain), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ttf eval: error: ") and "plain.zarr: the store names no env" in err
