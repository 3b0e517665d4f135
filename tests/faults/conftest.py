"""Fixtures of the fault-injection suite: a small store, a tiny training run (reference and one
interrupted after step 5), and the three ways a file gets damaged."""

import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from ttfkit.data import ReplayBuffer

TINY = dict(batch=8, lr=1e-3, warmup_steps=2, ckpt_every=2, log_every=1, val_fraction=0.34, horizon=8,
            n_obs_steps=2, n_action_steps=4, backbone_options={"hidden_dim": 32, "n_blocks": 1},
            policy_options={"encoder": {"lowdim_hidden": 16, "lowdim_features": 8}, "num_steps": 2})
OPS = ("delete", "truncate", "random")


def episode(i: int, length: int = 12) -> dict[str, np.ndarray]:
    """Episode ``i`` of the synthetic stores: a pure function of ``i`` (so a writer killed anywhere
    can be checked against it)."""
    rng = np.random.default_rng(i)
    pos = np.cumsum(rng.normal(scale=0.1, size=(length, 3)), axis=0).astype(np.float32)
    env = np.repeat(rng.uniform(-1, 1, size=(1, 4)), length, axis=0).astype(np.float32)
    action = np.tanh(pos @ rng.normal(size=(3, 2))).astype(np.float32)
    pixels = rng.integers(0, 256, size=(length, 8, 8, 3), dtype=np.uint8)
    return {"agent_pos": pos, "environment_state": env, "action": action, "pixels": pixels}


def make_store(path, n_episodes: int = 6):
    with ReplayBuffer.create(path, attrs={"source": "fault suite"}) as buf:
        for i in range(n_episodes):
            buf.add_episode(episode(i))
    return path


def damage(file, op: str, seed: int = 0) -> None:
    """Delete ``file``, truncate it to half its size, or overwrite it with random bytes."""
    if op == "delete":
        file.unlink()
    elif op == "truncate":
        data = file.read_bytes()
        file.write_bytes(data[: len(data) // 2])
    elif op == "random":
        file.write_bytes(np.random.default_rng(seed).bytes(max(16, file.stat().st_size)))
    else:
        raise ValueError(op)


@pytest.fixture(scope="session")
def faults():
    """The helpers above, for the test modules (conftest is not importable by name)."""
    return SimpleNamespace(episode=episode, make_store=make_store, damage=damage, TINY=TINY)


@pytest.fixture(scope="session")
def store_template(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("faults") / "template.zarr")


@pytest.fixture
def store(tmp_path, store_template):
    """A fresh copy of a 6-episode store (agent_pos, environment_state, action, pixels)."""
    path = tmp_path / "s.zarr"
    shutil.copytree(store_template, path)
    return path


class _Stop(Exception):
    pass


@pytest.fixture(scope="session")
def runs(tmp_path_factory, store_template):
    """{"reference": a 6-step run, "crashed": the same run stopped after step 5 (checkpoints at 2, 4),
    "config": kwargs of its TrainConfig without out}."""
    from ttfkit.policies.trainer import TrainConfig, train

    root = tmp_path_factory.mktemp("runs")
    kw = dict(dataset=str(store_template), steps=6, **TINY)
    train(TrainConfig(out=str(root / "reference"), **kw))

    def stop(step, metrics):
        if step == 5:
            raise _Stop

    with pytest.raises(_Stop):
        train(TrainConfig(out=str(root / "crashed"), **kw), progress=stop)
    return {"reference": root / "reference", "crashed": root / "crashed", "config": kw}
