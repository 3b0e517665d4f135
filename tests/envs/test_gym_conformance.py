"""ttfkit's task envs as gymnasium envs: the env checker is on and passes, observation bounds are
finite where the simulator knows them and hold over expert episodes, render_fps is 1 / the
simulator's step, and ``terminate_on_success`` ends an episode exactly at its first success."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ttfkit.envs as envs
from ttfkit.envs.experts import make_expert

IDS = ["ttfkit/metaworld-pick-place-v3", "ttfkit/fetch-pick-and-place-v4"]


def _wrappers(env) -> list[str]:
    names = []
    while isinstance(env, gym.Wrapper):
        names.append(type(env).__name__)
        env = env.env
    return names


@pytest.mark.parametrize("env_id", IDS)
def test_checker_on_by_default_and_passes(env_id):
    env = envs.make_env(env_id, render_mode="rgb_array", render_size=32)
    assert "PassiveEnvChecker" in _wrappers(env)
    assert "PassiveEnvChecker" not in _wrappers(envs.make_env(env_id, disable_env_checker=True))
    inner = env.unwrapped
    assert inner.metadata["render_fps"] == round(1.0 / inner._env.dt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Unbounded parts (object poses, velocities) are documented; anything else is an error.
        warnings.filterwarnings("ignore", message=".*infinity.*")
        check_env(inner)
    env.close()


def test_metaworld_bounds_are_finite_where_known_and_hold_over_expert_episodes():
    env_id = "ttfkit/metaworld-pick-place-v3"
    env = envs.make_env(env_id)
    space = env.observation_space
    agent, state = space["agent_pos"], space["environment_state"]
    assert np.isfinite(agent.low).all() and np.isfinite(agent.high).all()  # hand + gripper
    assert np.isfinite(state.low[-3:]).all() and np.isfinite(state.high[-3:]).all()  # goal
    assert (agent.high - agent.low > 0).all() and (state.high[-3:] - state.low[-3:] > 0).all()
    expert = make_expert(env_id)
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        for _ in range(150):
            assert space.contains(obs), {k: (v.min(), v.max()) for k, v in obs.items()}
            obs, *_ = env.step(expert({k: v.copy() for k, v in obs.items()}))
    env.close()


@pytest.mark.parametrize("env_id", ["ttfkit/metaworld-reach-v3", "ttfkit/fetch-pick-and-place-v4"])
def test_terminate_on_success_ends_at_the_first_success(env_id):
    expert = make_expert(env_id)

    def run(**kwargs):
        env = envs.make_env(env_id, **kwargs)
        obs, _ = env.reset(seed=3)
        successes, terminated = [], []
        for _ in range(env.spec.max_episode_steps):
            obs, _, term, trunc, info = env.step(expert({k: v.copy() for k, v in obs.items()}))
            successes.append(info["is_success"])
            terminated.append(term)
            if term or trunc:
                break
        env.close()
        return np.array(successes), np.array(terminated)

    plain_success, plain_term = run()
    assert not plain_term.any() and plain_success.any()  # the expert succeeds; ttfkit never ends
    success, term = run(terminate_on_success=True)
    first = int(np.argmax(plain_success))
    assert len(term) == first + 1 and term[-1] and not term[:-1].any()
    np.testing.assert_array_equal(success, plain_success[: first + 1])
