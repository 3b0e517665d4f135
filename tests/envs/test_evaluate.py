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
    assert policy.resets == 3  # once per batch of n_envs=1
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
    for k, n in [(0, 10), (7, 10), (50, 50), (13, 40)]:
        z = norm.ppf(0.975)
        p = k / n
        centre = (k + z * z / 2) / (n + z * z)
        half = z * np.sqrt(n) / (n + z * z) * np.sqrt(p * (1 - p) + z * z / (4 * n))
        lo, hi = wilson_interval(k, n)
        assert lo == pytest.approx(max(0, centre - half), abs=1e-12)
        assert hi == pytest.approx(min(1, centre + half), abs=1e-12)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


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


class _NoisyPolicy:
    """Random actions from a generator seeded by reset(seed=...): a stand-in for a sampling policy."""

    def __init__(self):
        self.reset_seeds = []

    def reset(self, seed=None):
        self.reset_seeds.append(seed)
        self.rng = np.random.default_rng(seed)

    def select_action(self, obs):
        return self.rng.uniform(-1, 1, size=(len(obs["agent_pos"]), 4))


def test_stochastic_policy_is_reseeded_per_batch_and_reproducible():
    runs = []
    for _ in range(2):
        policy = _NoisyPolicy()
        result = envs.evaluate(policy, "ttfkit/metaworld-reach-v3", 2, seed=100_000, n_envs=1, max_steps=5)
        assert policy.reset_seeds == [100_000, 100_001]
        runs.append(result.returns)
    assert runs[0] == runs[1]
