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
                           make_checkpoint=make_checkpoint, make_env_policy=make_env_policy,
                           episode_lengths=EPISODE_LENGTHS, tiny=TINY)


TINY = {"horizon": 8, "n_obs_steps": 2, "n_action_steps": 4, "backbone": "mlp",
        "backbone_options": {"hidden_dim": 32, "n_blocks": 1, "time_dim": 16},
        "encoder": {"lowdim_hidden": 32, "lowdim_features": 16, "image_channels": 4,
                    "image_keypoints": 4, "image_features": 8}}


def make_checkpoint(store_path, out, name: str = "flow", seed: int = 0, **overrides):
    """A tiny ttfkit policy on the store's agent_pos, environment_state and pixels, with a
    normaliser fitted on it (min-max states, image pixels), saved to ``out``; returns the policy."""
    import torch

    from ttfkit.data import Normalizer
    from ttfkit.policies import make_policy

    buf = ReplayBuffer.open(store_path)
    keys = ["agent_pos", "environment_state", "pixels"]
    norm = Normalizer.fit(buf, keys + ["action"], mode="minmax")
    shapes = {"agent_pos": (3,), "environment_state": (5,), "pixels": (3, *buf["pixels"].shape[1:3])}
    torch.manual_seed(seed)
    policy = make_policy(name, normalizer=norm, obs_shapes=shapes, action_dim=2,
                         **{**TINY, **overrides})
    # Random non-zero weights everywhere (some backbones zero-init their output layer).
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    policy.eval()
    policy.save(out)
    return policy


def make_env_policy(env_id: str, store, n_demos: int = 1):
    """A tiny flow policy (2 Euler steps, initialised after ``torch.manual_seed(0)``) on ``env_id``'s agent_pos and
    environment_state, with a min-max normaliser fitted on ``n_demos`` expert demos collected into ``store``."""
    import torch

    from ttfkit.data import Normalizer
    from ttfkit.envs.collect import collect
    from ttfkit.policies import make_policy

    collect(env_id, n_demos, store, seed=0)
    buf = ReplayBuffer.open(store)
    norm = Normalizer.fit(buf, ["agent_pos", "environment_state", "action"], mode="minmax")
    shapes = {k: buf[k].shape[1:] for k in ("agent_pos", "environment_state")}
    torch.manual_seed(0)
    return make_policy("flow", normalizer=norm, obs_shapes=shapes, action_dim=buf["action"].shape[1],
                       num_steps=2, **TINY)


@pytest.fixture(scope="module")
def module_helpers():
    """``helpers`` for module-scoped fixtures."""
    return SimpleNamespace(make_episodes=make_episodes, write_store=write_store,
                           make_checkpoint=make_checkpoint, make_env_policy=make_env_policy,
                           episode_lengths=EPISODE_LENGTHS, tiny=TINY)
