"""Rollout value reward on real Meta-World: exact against an independent replay, identical with worker
processes, bookkeeping of simulator steps; and the aligner's bad-input errors."""

import numpy as np
import pytest
import torch

import ttfkit.envs  # noqa: F401
from ttfkit.align.policy import AlignConfig, AlignedPolicy
from ttfkit.align.rewards import make_reward
from ttfkit.envs import make_env
from ttfkit.envs.evaluate import evaluate

ENV = "ttfkit/metaworld-reach-v3"


def _prefix_env(seed, prefix):
    env = make_env(ENV)
    env.reset(seed=seed)
    for a in prefix:
        env.step(a)
    return env


def test_rollout_reward_without_continuation_equals_an_independent_replay(tiny_policy):
    rng = np.random.default_rng(0)
    prefix = rng.uniform(-1, 1, (5, 4)).astype(np.float32)
    chunks = torch.as_tensor(rng.uniform(-1, 1, (3, 8, 4)).astype(np.float32))
    reward = make_reward("rollout", policy=tiny_policy, env_id=ENV, horizon=0, return_scale=0.5, success_bonus=7.0)
    reward.reset_slot(0, seed=11)
    reward.observe(prefix[:1])
    for a in prefix[1:]:
        reward.observe(a[None])
    vals = reward(chunks, {"slot": 0})
    assert reward.sim_steps == 3 * 4  # executed part: chunk[1:5] (To-1 = 1, n_action_steps = 4)
    for i in range(3):
        env = _prefix_env(11, prefix)
        rewards, success = [], False
        for a in chunks[i, 1:5].numpy():
            _, r, _, _, info = env.step(a)
            rewards.append(r)
            success |= bool(info["is_success"])
            if success:
                break
        assert float(vals[i]) == pytest.approx(7.0 * success + 0.5 * np.mean(rewards), rel=1e-5)
    # the reward left its simulator where it was: a second call gives the same values
    torch.testing.assert_close(reward(chunks, {"slot": 0}), vals)
    reward.close()


def test_rollout_reward_continuation_is_identical_in_worker_processes(tiny_policy):
    chunks = torch.as_tensor(np.random.default_rng(1).uniform(-1, 1, (4, 8, 4)).astype(np.float32))
    values, steps = [], []
    for workers in (0, 2):
        reward = make_reward("rollout", policy=tiny_policy, env_id=ENV, horizon=12, workers=workers,
                             env_kwargs={"max_episode_steps": 40})
        reward.reset_slot(0, seed=3)
        for a in np.zeros((6, 1, 4), np.float32):
            reward.observe(a)
        values.append(reward(chunks, {"slot": 0}))
        steps.append(reward.sim_steps)
        reward.close()
    torch.testing.assert_close(values[0], values[1], rtol=0, atol=0)
    # no success on reach from random actions in 16 steps: every look-ahead runs 4 + 12 steps
    assert steps == [4 * 16, 4 * 16]
    assert reward.policy_evals == 4 * 3 * 2  # 3 continuation chunks of 2 flow steps per candidate


def test_rollout_reward_respects_the_episode_limit_and_tracks_the_evaluator(tiny_policy):
    reward = make_reward("rollout", policy=tiny_policy, env_id=ENV, horizon=100, env_kwargs={"max_episode_steps": 10})
    aligned = AlignedPolicy(tiny_policy, reward, AlignConfig(method="best-of-n", particles=2))
    evaluate(aligned, ENV, 2, seed=50, n_envs=1, max_steps=10)
    assert reward.mismatches == 0
    # chunks planned at steps 0, 4, 8: look-aheads capped by the 10-step limit -> 10, 6, 2 steps each
    assert [s["sim_steps"] for s in aligned.stats] == [20, 12, 4] * 2
    reward.close()
    with pytest.raises(KeyError, match="slot"):
        make_reward("rollout", policy=tiny_policy, env_id=ENV)(torch.zeros(1, 8, 4), {})


def test_a_reward_returning_nan_is_an_error_naming_the_candidates(tiny_policy):
    class NaNReward:
        def __call__(self, x, ctx=None):
            r = torch.zeros(x.shape[0])
            r[1] = float("nan")
            return r

    aligned = AlignedPolicy(tiny_policy, NaNReward(), AlignConfig(method="best-of-n", particles=3))
    with pytest.raises(ValueError, match=r"non-finite values \[nan\] for candidates \[1\]"):
        evaluate(aligned, ENV, 1, seed=0, n_envs=1, max_steps=4)


def test_look_ahead_view_check_covers_every_image_key():
    """Any (C, H, W) key is an image, named `pixels` or not (robomimic's `agentview_image`): its env side must be
    (H, W, C); low-dimensional keys only need to exist."""
    from gymnasium import spaces

    from ttfkit.align.rollout import check_policy_view

    def env(**keys):
        return type("Env", (), {"observation_space": spaces.Dict(keys), "spec": None})()

    image = spaces.Box(0, 255, (24, 24, 3), np.uint8)
    state = spaces.Box(-1, 1, (9,), np.float32)
    check_policy_view(env(agentview_image=image, robot0_eef_pos=state), {"agentview_image": (3, 24, 24),
                                                                          "robot0_eef_pos": (9,)})
    with pytest.raises(ValueError, match=r"renders 'agentview_image' of shape \(24, 24, 3\).*reads \(3, 32, 32\)"):
        check_policy_view(env(agentview_image=image), {"agentview_image": (3, 32, 32)})
    with pytest.raises(ValueError, match=r"gives no \['robot0_eef_pos'\]"):
        check_policy_view(env(agentview_image=image), {"robot0_eef_pos": (9,)})
