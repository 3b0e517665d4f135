"""Fetch wrapper: seeded layouts, observation slices, experts."""

import numpy as np
import pytest

import ttfkit.envs as envs


@pytest.mark.parametrize("task", ["pick-and-place", "push"])
def test_seeded_layouts_and_slices(task):
    env = envs.make_env(f"ttfkit/fetch-{task}-v4")
    layouts = []
    for s in [0, 1, 2, 0]:
        obs, _ = env.reset(seed=s)
        layouts.append(env.unwrapped.layout())
    np.testing.assert_array_equal(layouts[0], layouts[3])
    assert np.linalg.norm(layouts[0] - layouts[1]) > 1e-3 and np.linalg.norm(layouts[1] - layouts[2]) > 1e-3
    obs, *_ = env.step(np.array([0.5, -0.5, 0.2, 1.0], dtype=np.float32))
    raw = env.unwrapped._env._get_obs()
    o = raw["observation"]
    np.testing.assert_allclose(obs["agent_pos"][:3], o[0:3], atol=1e-6)
    np.testing.assert_allclose(obs["agent_pos"][3:5], o[9:11], atol=1e-6)
    np.testing.assert_allclose(obs["environment_state"][:3], raw["achieved_goal"], atol=1e-6)
    np.testing.assert_allclose(obs["environment_state"][12:], raw["desired_goal"], atol=1e-6)
    # object position relative to the gripper is recoverable from the two parts
    np.testing.assert_allclose(obs["environment_state"][:3] - obs["agent_pos"][:3], o[6:9], atol=1e-5)
    env.close()


@pytest.mark.parametrize("task", ["pick-and-place", "push"])
def test_fetch_experts_succeed_and_success_flag_means_within_5cm(task):
    env_id = f"ttfkit/fetch-{task}-v4"
    env, expert = envs.make_env(env_id), envs.make_expert(env_id)
    wins = 0
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        for _ in range(50):
            obs, _, _, _, info = env.step(expert(obs))
            dist = np.linalg.norm(obs["environment_state"][:3] - obs["environment_state"][12:])
            assert info["is_success"] == (dist < 0.05)
        wins += info["is_success"]  # still at the goal at the end of the episode
    assert wins == 6
    env.close()


def test_pusher_actually_pushes_from_behind():
    """The block is moved by contact: it ends closer to the goal and was never lifted."""
    env, expert = envs.make_env("ttfkit/fetch-push-v4"), envs.make_expert("ttfkit/fetch-push-v4")
    obs, _ = env.reset(seed=4)
    start = obs["environment_state"][:3].copy()
    goal = obs["environment_state"][12:]
    heights = []
    for _ in range(50):
        obs, *_ = env.step(expert(obs))
        heights.append(obs["environment_state"][2])
    end = obs["environment_state"][:3]
    assert np.linalg.norm(start - goal) > 0.05  # this seed needs a real push
    assert np.linalg.norm(end - goal) < 0.05
    assert max(heights) < start[2] + 0.01  # slid on the table, not carried
    env.close()
