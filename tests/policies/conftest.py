"""Fixtures for policy tests: a tiny synthetic zarr store whose action is a function of the state."""

import numpy as np
import pytest

from ttfkit.data import ReplayBuffer


def write_store(path, n_episodes=6, length=24, seed=0, pixels=False):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(7, 2))
    buffer = ReplayBuffer.create(path, attrs={"source": "synthetic test store"})
    for _ in range(n_episodes):
        pos = np.cumsum(rng.normal(scale=0.1, size=(length, 3)), axis=0).astype(np.float32)
        env = np.repeat(rng.uniform(-1, 1, size=(1, 4)), length, axis=0).astype(np.float32)
        action = np.tanh(np.concatenate([pos, env], axis=1) @ w).astype(np.float32)
        episode = {"agent_pos": pos, "environment_state": env, "action": action}
        if pixels:
            episode["pixels"] = rng.integers(0, 256, size=(length, 84, 84, 3), dtype=np.uint8)
        buffer.add_episode(episode)
    return path


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("store") / "tiny.zarr")


@pytest.fixture
def make_store():
    """``make_store(path, **kw)`` writes a synthetic store (see ``write_store``)."""
    return write_store


class TrainingCrash(Exception):
    """Raised by ``crash_and_resume``'s progress hook to interrupt a training run."""


@pytest.fixture
def crash_and_resume():
    """``crash_and_resume(config, at)``: ``train(config)`` fails at step ``at`` (an exception from its progress
    hook, as a crash would), then ``train(config, resume=True)`` runs it to the end from its last checkpoint."""
    from ttfkit.policies.trainer import train

    def run(config, at: int):
        def crash(step, metrics):
            if step == at:
                raise TrainingCrash

        with pytest.raises(TrainingCrash):
            train(config, progress=crash)
        return train(config, resume=True)

    return run
