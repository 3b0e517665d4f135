"""Fixtures for the LeRobot integration tests: a small zarr store with every kind of key."""

from types import SimpleNamespace

import numpy as np
import pytest

from ttfkit.data import ReplayBuffer

EPISODE_LENGTHS = (4, 6, 5)


def make_episodes(seed: int = 0, image_hw: tuple[int, int] = (8, 8)) -> list[dict[str, np.ndarray]]:
    """Random episodes in ttfkit's store layout: state, env state, images, actions, extras."""
    rng = np.random.default_rng(seed)
    episodes = []
    for length in EPISODE_LENGTHS:
        episodes.append({
            "agent_pos": rng.standard_normal((length, 3)).astype(np.float32),
            "environment_state": rng.standard_normal((length, 5)).astype(np.float32),
            "pixels": rng.integers(0, 256, (length, *image_hw, 3), dtype=np.uint8),
            "action": rng.uniform(-1, 1, (length, 2)).astype(np.float32),
            "executed_action": rng.uniform(-1, 1, (length, 2)).astype(np.float32),
            "reward": rng.standard_normal(length).astype(np.float32),
            "success": rng.random(length) < 0.5,
        })
    return episodes


def write_store(path, episodes, attrs=None) -> ReplayBuffer:
    buf = ReplayBuffer.create(path, attrs=attrs)
    for episode in episodes:
        buf.add_episode(episode)
    return ReplayBuffer.open(path)


@pytest.fixture
def store(tmp_path):
    """(path, episodes) of a 3-episode store with 8x8 images."""
    episodes = make_episodes()
    path = tmp_path / "demos.zarr"
    write_store(path, episodes, attrs={"env_id": "ttfkit/metaworld-reach-v3", "seeds": [1, 2, 3]})
    return path, episodes


@pytest.fixture
def helpers():
    """The builders above, for tests that need their own stores (importlib mode has no
    `import conftest`)."""
    return SimpleNamespace(make_episodes=make_episodes, write_store=write_store,
                           episode_lengths=EPISODE_LENGTHS)
