"""Meta-World wrapper: fresh seeded layouts, observation slices, rebuilt expert input, determinism."""

import numpy as np
import pytest

import ttfkit.envs as envs
from ttfkit.envs.metaworld import to_metaworld_obs


@pytest.fixture(scope="module")
def pick_place():
    env = envs.make_env("ttfkit/metaworld-pick-place-v3")
    yield env
    env.close()


def _layouts(env, seeds):
    out = []
    for s in seeds:
        env.reset(seed=s)
        out.append(env.unwrapped.layout())
    return np.array(out)


def test_same_seed_same_layout_and_disjoint_seed_ranges_do_not_share_layouts(pick_place):
    train = _layouts(pick_place, range(0, 60))
    test = _layouts(pick_place, range(100_000, 100_060))
    again = _layouts(pick_place, [5, 100_003, 5])
    np.testing.assert_array_equal(again[0], train[5])
    np.testing.assert_array_equal(again[2], train[5])
    np.testing.assert_array_equal(again[1], test[3])
    # MT1 would give at most 50 distinct layouts shared by both ranges; here all 120 are distinct
    both = np.concatenate([train, test])
    dists = np.linalg.norm(both[:, None] - both[None], axis=-1) + np.eye(len(both)) * 1e9
    assert dists.min() > 1e-6
    assert len({tuple(np.round(r, 9)) for r in both}) == 120


def test_observation_slices_match_metaworld_state(pick_place):
    obs, _ = pick_place.reset(seed=11)
    for _ in range(3):
        obs, *_ = pick_place.step(np.array([0.3, -0.2, 0.1, 1.0], dtype=np.float32))
    raw = pick_place.unwrapped.last_raw_obs
    np.testing.assert_array_equal(obs["agent_pos"], raw[0:4].astype(np.float32))
    np.testing.assert_array_equal(obs["environment_state"][:14], raw[4:18].astype(np.float32))
    np.testing.assert_array_equal(obs["environment_state"][14:], raw[36:39].astype(np.float32))
    # the goal in the observation is the layout's goal (goal observable)
    np.testing.assert_allclose(obs["environment_state"][14:], pick_place.unwrapped.layout()[3:], atol=1e-6)
    rebuilt = to_metaworld_obs(obs["agent_pos"], obs["environment_state"])
    np.testing.assert_allclose(rebuilt[:18], raw[:18], atol=1e-6)
    np.testing.assert_allclose(rebuilt[36:], raw[36:], atol=1e-6)
    batched = to_metaworld_obs(np.stack([obs["agent_pos"]] * 2), np.stack([obs["environment_state"]] * 2))
    assert batched.shape == (2, 39)
    with pytest.raises(ValueError, match="environment_state"):
        to_metaworld_obs(obs["agent_pos"], obs["environment_state"][:10])


@pytest.mark.filterwarnings("ignore:Constant")
@pytest.mark.parametrize("task", ["pick-place", "stick-pull", "assembly"])
def test_expert_from_dict_matches_policy_on_raw_state(task):
    """The expert sees only the dict; Meta-World's policy sees the 39-dim state: same actions."""
    from metaworld.policies import ENV_POLICY_MAP

    env_id = f"ttfkit/metaworld-{task}-v3"
    env, expert, policy = envs.make_env(env_id), envs.make_expert(env_id), ENV_POLICY_MAP[f"{task}-v3"]()
    obs, _ = env.reset(seed=2)
    for _ in range(40):
        raw = env.unwrapped.last_raw_obs.copy()
        reference = np.clip(policy.get_action(raw.astype(np.float32).astype(np.float64)), -1, 1)
        action = expert(obs)
        np.testing.assert_allclose(action, reference, atol=1e-5)
        obs, *_ = env.step(action)
    env.close()


def test_episode_is_independent_of_history(pick_place):
    """Same seed + same actions -> identical trajectory, whatever ran before (no solver warm start)."""
    def rollout(seed):
        obs, _ = pick_place.reset(seed=seed)
        traj = [obs["environment_state"]]
        for t in range(30):
            obs, *_ = pick_place.step(np.array([np.sin(t), np.cos(t), -0.5, 1.0], dtype=np.float32))
            traj.append(obs["environment_state"])
        return np.array(traj)

    first = rollout(7)
    rollout(8)
    np.testing.assert_array_equal(rollout(7), first)


def test_max_episode_steps_override_truncates():
    env = envs.make_env("ttfkit/metaworld-reach-v3", max_episode_steps=7, seed=0)
    truncs = [env.step(np.zeros(4, dtype=np.float32))[3] for _ in range(7)]
    assert truncs == [False] * 6 + [True]
    env = envs.make_env("ttfkit/metaworld-reach-v3", max_episode_steps=600, seed=0)
    for _ in range(599):  # beyond Meta-World's own 500-step path limit
        _, _, terminated, truncated, _ = env.step(np.zeros(4, dtype=np.float32))
        assert not (terminated or truncated)
    assert env.step(np.zeros(4, dtype=np.float32))[3]
    env.close()
