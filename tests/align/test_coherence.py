"""The coherence reward: its closed form, and AlignedPolicy handing it the chunk being executed."""

import numpy as np
import pytest
import torch

import ttfkit.envs  # noqa: F401
from ttfkit.align.policy import AlignConfig, AlignedPolicy
from ttfkit.align.rewards import make_reward
from ttfkit.envs import make_env


def _reference(x, prev, to, shift):
    """-mean over overlapping steps of the squared distance, by explicit loops."""
    n, h, _ = x.shape
    out = np.zeros(n)
    steps = range(h - (to - 1) - shift)
    for i in range(n):
        out[i] = -np.mean([np.sum((x[i, to - 1 + s] - prev[to - 1 + shift + s]) ** 2) for s in steps])
    return out


def test_coherence_matches_the_closed_form_and_is_zero_without_a_previous_chunk():
    rng = np.random.default_rng(0)
    x, prev = rng.normal(size=(5, 8, 4)), rng.normal(size=(8, 4))
    reward = make_reward("coherence", scale=2.0)
    got = reward(torch.as_tensor(x), {"prev_chunk": torch.as_tensor(prev), "chunk_shift": 4, "obs_steps": 2})
    np.testing.assert_allclose(got.numpy(), 2.0 * _reference(x, prev, 2, 4), rtol=1e-12)
    # a candidate equal to the previous plan shifted by the executed steps scores the maximum, 0
    shifted = np.concatenate([prev[4:], prev[:4]])[None]
    assert float(reward(torch.as_tensor(shifted), {"prev_chunk": torch.as_tensor(prev), "chunk_shift": 4,
                                                   "obs_steps": 1})) == 0.0
    assert torch.equal(reward(torch.as_tensor(x), {}), torch.zeros(5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"prev_chunk has shape \(8, 3\)"):
        reward(torch.as_tensor(x), {"prev_chunk": torch.zeros(8, 3), "chunk_shift": 4, "obs_steps": 2})
    with pytest.raises(ValueError, match="scale must be > 0"):
        make_reward("coherence", scale=0.0)


class _Recording:
    """The coherence reward, recording the previous chunk each planning call was shown."""

    differentiable = True

    def __init__(self):
        self.inner, self.seen = make_reward("coherence"), []

    def __call__(self, x, ctx):
        prev = ctx.get("prev_chunk")
        self.seen.append(None if prev is None else prev.clone())
        return self.inner(x, ctx)


def test_aligned_policy_shows_the_reward_the_chunk_it_is_executing(tiny_policy):
    """On real Meta-World: every planning call after the first sees, as prev_chunk, the chunk whose actions
    were executed since the last plan; a new episode starts without one."""
    reward = _Recording()
    aligned = AlignedPolicy(tiny_policy, reward, AlignConfig(method="best-of-n", particles=3), seed_base=1)
    env, to, shift = make_env("ttfkit/metaworld-reach-v3"), 2, 4
    for seed in (3, 4):
        aligned.reset()
        aligned.reset_slot(0, seed)
        start = len(reward.seen)
        obs, _ = env.reset(seed=seed)
        executed = []
        for _ in range(3 * shift):
            a = aligned.select_action({k: np.asarray(v)[None] for k, v in obs.items()})[0]
            executed.append(a.clone())
            obs, *_ = env.step(a.numpy())
        seen = reward.seen[start:]
        assert len(seen) == 3 and seen[0] is None
        for k in (1, 2):  # chunk k-1's executed actions are its steps To-1 .. To-1+shift
            np.testing.assert_allclose(seen[k][to - 1:to - 1 + shift].numpy(),
                                       torch.stack(executed[(k - 1) * shift:k * shift]).numpy(), atol=1e-6)
