"""Closed-loop evaluator: expert success, zero policy fails, n_envs invariance, CI, JSON, videos."""

import numpy as np
import pytest
from scipy.stats import norm

import ttfkit.envs as envs
from ttfkit.envs.evaluate import EvalResult, wilson_interval


class ZeroPolicy:
    def __init__(self):
        self.resets = 0

    def reset(self):
        self.resets += 1

    def select_action(self, obs):
        return np.zeros((len(obs["agent_pos"]), 4), dtype=np.float32)


class WrongShapePolicy(ZeroPolicy):
    def select_action(self, obs):
        return np.zeros((1, 3), dtype=np.float32)


def test_expert_through_evaluate_succeeds_on_metaworld(tmp_path):
    env_id = "ttfkit/metaworld-drawer-open-v3"
    result = envs.evaluate(envs.make_expert(env_id), env_id, 10, seed=500, n_envs=1,
                           video_dir=tmp_path, n_videos=1)
    assert result.success_rate >= 0.9
    assert result.seeds == tuple(range(500, 510))
    assert all(1 <= n < 500 for n, ok in zip(result.lengths, result.successes) if ok)  # stopped early
    (video,) = result.videos
    assert video.endswith("_success.mp4") == result.successes[0]
    import imageio.v2 as imageio
    frames = imageio.mimread(video)
    assert len(frames) == result.lengths[0] + 1 and frames[0].shape == (128, 128, 3)


def test_zero_policy_never_succeeds_on_pick_place():
    policy = ZeroPolicy()
    result = envs.evaluate(policy, "ttfkit/metaworld-pick-place-v3", 3, n_envs=1)
    assert result.success_rate == 0.0 and result.n_episodes == 3
    assert result.lengths == (500,) * 3  # ran to the time limit
    assert policy.resets == 3  # no reset_slot and one env: reset before every episode
    z2 = norm.ppf(0.975) ** 2
    assert result.ci_low == 0.0 and result.ci_high == pytest.approx(z2 / (3 + z2))  # Wilson, k = 0


def test_same_seeds_same_results_with_one_and_two_envs():
    env_id = "ttfkit/fetch-push-v4"
    expert = envs.make_expert(env_id)
    one = envs.evaluate(expert, env_id, 5, seed=20, n_envs=1)
    two = envs.evaluate(expert, env_id, 5, seed=20, n_envs=2)  # async; last batch padded
    assert one.successes == two.successes
    assert one.lengths == two.lengths
    np.testing.assert_allclose(one.returns, two.returns)
    assert len(set(one.lengths)) > 1  # episodes genuinely differ
    assert one.success_rate == 1.0


def test_wilson_interval_matches_closed_form():
    for level in (0.95, 0.9):
        z = norm.ppf(0.5 + level / 2)
        for n in (1, 2, 7, 10, 40, 50):
            for k in range(n + 1):
                p = k / n
                centre = (k + z * z / 2) / (n + z * z)
                half = z * np.sqrt(n) / (n + z * z) * np.sqrt(p * (1 - p) + z * z / (4 * n))
                lo, hi = wilson_interval(k, n, confidence=level)
                assert lo == pytest.approx(max(0, centre - half), abs=1e-12)
                assert hi == pytest.approx(min(1, centre + half), abs=1e-12)
                assert (lo == 0.0) == (k == 0) and (hi == 1.0) == (k == n)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.0)


def test_result_json_round_trip_and_bad_policy_output():
    result = EvalResult(env_id="ttfkit/fetch-push-v4", policy="p", seeds=(1, 2, 3), successes=(True, False, True),
                        returns=(1.0, -2.5, 0.0), lengths=(4, 50, 7), env_spec="{}", max_steps=50)
    back = EvalResult.from_json(result.to_json())
    assert back == result
    assert back.success_rate == pytest.approx(2 / 3)
    with pytest.raises(KeyError, match="lacks"):
        EvalResult.from_json('{"env_id": "x"}')
    with pytest.raises(ValueError, match="expected"):
        envs.evaluate(WrongShapePolicy(), "ttfkit/fetch-push-v4", 1, n_envs=1)


class _NoisyExpert:
    """Scripted expert plus per-episode noise (protocol v2): slot j's noise comes from a generator
    seeded by its episode's seed in ``reset_slot``; episodes end at different steps."""

    def __init__(self, env_id, scale):
        self.expert, self.scale, self.rngs, self.started = envs.make_expert(env_id), scale, {}, []

    def reset(self):
        self.rngs = {}

    def reset_slot(self, slot, seed):
        self.rngs[slot] = np.random.default_rng(seed)
        self.started.append(seed)

    def select_action(self, obs):
        action = self.expert.select_action(obs)
        noise = np.stack([self.rngs[j].normal(scale=self.scale, size=4) for j in range(len(action))])
        return np.clip(action + noise, -1, 1)


def test_noisy_policy_per_episode_results_do_not_depend_on_slots_or_workers():
    env_id = "ttfkit/fetch-push-v4"
    runs = {}
    for n_envs, workers, sync in [(1, 0, 1), (2, 0, 1), (3, 0, 4), (3, 2, 3)]:  # sync: refill period
        policy = _NoisyExpert(env_id, scale=0.6)
        runs[n_envs, workers, sync] = envs.evaluate(policy, env_id, 7, seed=40, n_envs=n_envs, workers=workers,
                                                    sync_every=sync)
        assert sorted(policy.started) == list(range(40, 47))  # every episode reset once, with its seed
    ref = runs[1, 0, 1]
    assert len(set(ref.lengths)) > 2 and 0 < ref.n_successes < 7  # episodes end at different steps
    for key, result in runs.items():
        assert result.seeds == tuple(range(40, 47)), key
        assert (result.successes, result.lengths, result.returns) == (ref.successes, ref.lengths, ref.returns), key


def test_stochastic_flow_policy_identical_per_episode_with_one_two_three_envs():
    import torch

    from ttfkit.policies import make_policy

    torch.manual_seed(0)
    policy = make_policy("flow", obs_shapes={"agent_pos": (4,), "environment_state": (17,)}, action_dim=4,
                         horizon=8, n_action_steps=4, num_steps=10,
                         backbone_options={"hidden_dim": 64, "n_blocks": 1}).eval()
    env_id = "ttfkit/metaworld-reach-v3"
    results = [envs.evaluate(policy, env_id, 5, seed=7, n_envs=n, workers=0, max_steps=24) for n in (1, 2, 3)]
    results.append(envs.evaluate(policy, env_id, 5, seed=7, n_envs=3, workers=2, max_steps=24))
    for r in results[1:]:
        assert r.returns == results[0].returns and r.lengths == results[0].lengths
        assert r.successes == results[0].successes
    assert len(set(results[0].returns)) == 5  # the episodes differ
    # the noise is per episode: a run from seed 8 repeats episodes 8..11 of the run from seed 7
    shifted = envs.evaluate(policy, env_id, 4, seed=8, n_envs=2, workers=0, max_steps=24)
    assert shifted.returns == results[0].returns[1:]
