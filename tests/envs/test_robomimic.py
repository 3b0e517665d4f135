"""robomimic tasks on robosuite 1.5: env checker, seeded layouts, observation layout against the
simulator, cameras, scripted experts and their task constants."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ttfkit.envs as envs
from ttfkit.envs import experts_robomimic as ex
from ttfkit.envs.robomimic import TASKS, _robomimic_object_order

pytest.importorskip("robosuite", reason="robosuite extra (make setup installs it)")

_ENVS: dict = {}


def _env(task):
    """One env per task for the whole module (building one takes seconds)."""
    if task not in _ENVS:
        _ENVS[task] = envs.make_env(f"ttfkit/robomimic-{task}-v0")
    return _ENVS[task]


@pytest.fixture(scope="module", autouse=True)
def _close_envs():
    yield
    for env in _ENVS.values():
        env.close()
    _ENVS.clear()


def test_ids_registered_with_robomimic_horizons():
    ids = envs.list_envs("robomimic")
    assert ids == sorted(f"ttfkit/robomimic-{t}-v0" for t in TASKS)
    import gymnasium as gym

    assert [gym.spec(f"ttfkit/robomimic-{t}-v0").max_episode_steps for t in ("lift", "square", "transport")] \
        == [400, 400, 700]


@pytest.mark.parametrize("task,n_arms,env_dim", [("lift", 1, 10), ("can", 1, 14), ("square", 1, 14),
                                                  ("tool-hang", 1, 44), ("transport", 2, 41)])
def test_env_checker_and_spaces(task, n_arms, env_dim):
    env = _env(task).unwrapped
    check_env(env, skip_render_check=True)
    assert env.action_space.shape == (7 * n_arms,)
    assert env.observation_space["agent_pos"].shape == (9 * n_arms,)
    assert env.observation_space["environment_state"].shape == (env_dim,)


def test_same_seed_same_rollout_other_seed_other_layout():
    env = _env("lift")
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (8, 7)).astype(np.float32)

    def rollout(seed):
        obs, _ = env.reset(seed=seed)
        trace = [np.concatenate([obs["agent_pos"], obs["environment_state"]])]
        for a in actions:
            obs, *_ = env.step(a)
            trace.append(np.concatenate([obs["agent_pos"], obs["environment_state"]]))
        return np.stack(trace), env.unwrapped.layout()

    a, layout_a = rollout(3)
    _ = rollout(4)  # something else in between
    b, layout_b = rollout(3)
    np.testing.assert_array_equal(a, b)
    layouts = [rollout(s)[1] for s in (5, 6)]
    assert np.linalg.norm(layouts[0][:2] - layouts[1][:2]) > 1e-3
    assert np.linalg.norm(layout_a[:2] - layouts[0][:2]) > 1e-3
    np.testing.assert_array_equal(layout_a, layout_b)


@pytest.mark.parametrize("task,body", [("lift", "cube_main"), ("can", "Can_main"), ("square", "SquareNut_main")])
def test_observation_matches_the_simulator(task, body):
    """agent_pos = eef pos/quat + fingers; environment_state starts with the object's pose (robomimic order)."""
    env = _env(task)
    obs, _ = env.reset(seed=1)
    obs, *_ = env.step(np.r_[0.3, -0.2, 0.1, 0.0, 0.0, 0.1, 1.0].astype(np.float32))
    rs = env.unwrapped._env
    data = rs.sim.data
    np.testing.assert_allclose(obs["agent_pos"][:3], data.site_xpos[rs.robots[0].eef_site_id["right"]], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(obs["agent_pos"][3:7]), 1.0, atol=1e-5)
    pos = data.body_xpos[rs.sim.model.body_name2id(body)]
    quat_wxyz = data.body_xquat[rs.sim.model.body_name2id(body)]
    np.testing.assert_allclose(obs["environment_state"][:3], pos, atol=1e-6)
    np.testing.assert_allclose(obs["environment_state"][3:7], np.r_[quat_wxyz[1:], quat_wxyz[0]], atol=1e-6)


def test_object_order_is_robosuite_1_4s():
    names = ["Can_to_robot0_eef_pos", "Can_to_robot0_eef_quat", "Can_pos", "Can_quat"]
    assert _robomimic_object_order(names) == ["Can_pos", "Can_quat", "Can_to_robot0_eef_pos",
                                              "Can_to_robot0_eef_quat"]
    lift = ["cube_pos", "cube_quat", "gripper_to_cube_pos"]
    assert _robomimic_object_order(lift) == lift
    assert _env("tool-hang").unwrapped.object_names[:4] == ["base_pos", "base_quat", "base_to_robot0_eef_pos",
                                                             "base_to_robot0_eef_quat"]


def test_cameras_and_robomimic_keys():
    env = envs.make_env("ttfkit/robomimic-lift-v0", cameras=["agentview", "robot0_eye_in_hand"], image_size=32,
                        obs_keys=["robot0_eef_pos", "object", "agentview_image"])
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    for cam in ("agentview", "robot0_eye_in_hand"):
        assert obs[cam].shape == (32, 32, 3) and obs[cam].dtype == np.uint8 and obs[cam].std() > 5
    np.testing.assert_array_equal(obs["agentview_image"], obs["agentview"])
    assert not np.array_equal(obs["agentview"], obs["robot0_eye_in_hand"])
    np.testing.assert_array_equal(obs["robot0_eef_pos"], obs["agent_pos"][:3])
    np.testing.assert_array_equal(obs["object"], obs["environment_state"])
    env.close()


def test_unknown_observation_key_names_both_sides():
    with pytest.raises(KeyError, match=r"robot0_eef_vel_lin.*asks for.*'robot0_eef_pos'.*provides.*'object'"):
        envs.make_env("ttfkit/robomimic-lift-v0", obs_keys=["robot0_eef_pos", "robot0_eef_vel_lin"])


def test_task_constants_of_the_experts_match_the_models():
    can = _env("can").unwrapped._env
    np.testing.assert_allclose(ex.CAN_TARGET, can.target_bin_placements[can.object_to_id["can"]])
    square = _env("square").unwrapped
    square.reset(seed=0)
    rs = square._env
    np.testing.assert_allclose(ex.SQUARE_PEG, rs.sim.data.body_xpos[rs.peg1_body_id], atol=1e-9)


def test_lift_expert_success_flag_is_the_cube_height():
    """Expert rollouts on 3 seeds succeed; is_success is exactly 'cube 4 cm above the table' every step."""
    env, expert = _env("lift"), envs.make_expert("ttfkit/robomimic-lift-v0")
    table = env.unwrapped._env.model.mujoco_arena.table_offset[2]
    for seed in (11, 12, 13):
        obs, info = env.reset(seed=seed)
        assert not info["is_success"]
        for _ in range(80):
            obs, _, _, _, info = env.step(expert(obs))
            assert info["is_success"] == (obs["environment_state"][2] > table + 0.04)
            if info["is_success"]:
                break
        assert info["is_success"], seed


@pytest.mark.slow
@pytest.mark.parametrize("task", ["can", "square"])
def test_can_and_square_experts_succeed(task):
    env, expert = _env(task), envs.make_expert(f"ttfkit/robomimic-{task}-v0")
    for seed in (21, 22):
        obs, _ = env.reset(seed=seed)
        for _ in range(300):
            obs, _, _, _, info = env.step(expert(obs))
            if info["is_success"]:
                break
        assert info["is_success"], seed


def test_no_expert_for_tool_hang():
    with pytest.raises(KeyError, match="lift, can and square"):
        envs.make_expert("ttfkit/robomimic-tool-hang-v0")
