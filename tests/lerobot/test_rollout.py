"""An exported policy in LeRobot's own rollout loop (lerobot_eval.rollout) on a ttfkit Meta-World
env agrees with ttfkit's evaluator on the same seeds and the same sampling noise."""

import numpy as np
import pytest
import torch

from ttfkit.envs import evaluate
from ttfkit.envs.collect import collect
from ttfkit.policies import load

ENV = "ttfkit/metaworld-reach-v3"


class _WithGenerator:
    """A ttfkit policy whose select_action draws its noise from ``generator`` (for the evaluator)."""

    def __init__(self, policy, generator):
        self.policy, self.generator = policy, generator

    def reset(self):
        self.policy.reset()

    def select_action(self, obs):
        return self.policy.select_action(obs, generator=self.generator)


def _both(policy_dir, ckpt, seed0: int, n: int, max_steps: int, env_kwargs: dict | None = None):
    """ttfkit's evaluator and LeRobot's rollout on the same seeds, noise from equal generators."""
    from lerobot_policy_ttfkit.rollout_ttfkit import evaluate_in_lerobot

    ours = evaluate(_WithGenerator(load(ckpt), torch.Generator().manual_seed(0)), ENV, n_episodes=n,
                    seed=seed0, n_envs=1, max_steps=max_steps, env_kwargs=env_kwargs)
    theirs = evaluate_in_lerobot(policy_dir, ENV, list(range(seed0, seed0 + n)), max_steps=max_steps,
                                 generator=torch.Generator().manual_seed(0), env_kwargs=env_kwargs)
    return ours, theirs


def test_lerobot_rollout_matches_ttfkit_evaluator_step_for_step(tmp_path, helpers):
    from lerobot_policy_ttfkit.export_ttfkit import export_ttfkit_policy

    from ttfkit.data import Normalizer, ReplayBuffer
    from ttfkit.policies import make_policy

    collect(ENV, 2, tmp_path / "demos.zarr", seed=0)
    buf = ReplayBuffer.open(tmp_path / "demos.zarr")
    norm = Normalizer.fit(buf, ["agent_pos", "environment_state", "action"], mode="minmax")
    shapes = {"agent_pos": buf["agent_pos"].shape[1:], "environment_state": buf["environment_state"].shape[1:]}
    tiny = {k: v for k, v in helpers.tiny.items()}
    policy = make_policy("flow", normalizer=norm, obs_shapes=shapes, action_dim=buf["action"].shape[1],
                         num_steps=2, **tiny)
    policy.save(tmp_path / "ckpt")
    exported = export_ttfkit_policy(tmp_path / "ckpt", tmp_path / "lr")
    for seed in (500, 501):  # one episode per call: each starts from the same noise stream
        ours, theirs = _both(exported, tmp_path / "ckpt", seed0=seed, n=1, max_steps=20)
        assert theirs.lengths == list(ours.lengths)
        assert theirs.success == list(ours.successes)
        # Same actions up to float rounding (LeRobot MIN_MAX with the exported min/max = ttfkit's map).
        np.testing.assert_allclose(theirs.returns, ours.returns, rtol=1e-6)


def test_pixel_policy_in_lerobots_rollout(tmp_path, helpers):
    """A policy reading ``pixels``: LeRobot's gym wrapper hands it over as ``observation.image``,
    the name the export uses, and the rollout agrees with ttfkit's evaluator step for step."""
    from lerobot_policy_ttfkit.export_ttfkit import export_ttfkit_policy

    from ttfkit.data import Normalizer, ReplayBuffer
    from ttfkit.policies import make_policy

    env_kwargs = {"pixels": True, "image_size": 24}
    collect(ENV, 1, tmp_path / "demos.zarr", seed=0, pixels=True, env_kwargs={"image_size": 24})
    buf = ReplayBuffer.open(tmp_path / "demos.zarr")
    norm = Normalizer.fit(buf, ["agent_pos", "pixels", "action"], mode="minmax")
    shapes = {"agent_pos": buf["agent_pos"].shape[1:], "pixels": (3, 24, 24)}
    policy = make_policy("flow", normalizer=norm, obs_shapes=shapes, action_dim=buf["action"].shape[1],
                         num_steps=2, **helpers.tiny)
    with torch.no_grad():  # non-zero weights everywhere, so the image path moves the actions
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    policy.save(tmp_path / "ckpt")
    exported = export_ttfkit_policy(tmp_path / "ckpt", tmp_path / "lr")
    assert "observation.image" in load_config_features(exported)
    ours, theirs = _both(exported, tmp_path / "ckpt", seed0=700, n=1, max_steps=12, env_kwargs=env_kwargs)
    assert theirs.lengths == list(ours.lengths) == [12]
    np.testing.assert_allclose(theirs.returns, ours.returns, rtol=1e-6)


def load_config_features(policy_dir) -> list[str]:
    import json

    return list(json.loads((policy_dir / "config.json").read_text())["input_features"])


@pytest.mark.slow
def test_trained_policy_success_rate_agrees(tmp_path):
    """End to end (1-5 min on 2 cores): demos, ttfkit training, export, both loops on 10 seeds."""
    from lerobot_policy_ttfkit.export_ttfkit import export_ttfkit_policy

    from ttfkit.policies import TrainConfig, train

    collect(ENV, 20, tmp_path / "demos.zarr", seed=0)
    ckpt = train(TrainConfig(dataset=str(tmp_path / "demos.zarr"), out=str(tmp_path / "run"), steps=600,
                             batch=64, lr=1e-3, horizon=8, n_obs_steps=2, n_action_steps=4,
                             ckpt_every=600, val_fraction=0.0, warmup_steps=20, log_every=100,
                             backbone_options={"hidden_dim": 128, "n_blocks": 2},
                             policy_options={"num_steps": 3}))
    exported = export_ttfkit_policy(ckpt, tmp_path / "lr")
    ours, theirs = _both(exported, ckpt, seed0=1000, n=10, max_steps=150)
    assert ours.success_rate >= 0.5  # the check below is about a policy that does something
    assert theirs.success == list(ours.successes)
    # The two loops normalise with different float formulas ((x - mean) / (std + 1e-8) versus
    # x * scale + offset), so a long closed-loop episode may end a few steps apart, after which the
    # shared noise stream is consumed at different times; lengths agree on average.
    assert abs(np.mean(theirs.lengths) - np.mean(ours.lengths)) <= 0.1 * np.mean(ours.lengths)
