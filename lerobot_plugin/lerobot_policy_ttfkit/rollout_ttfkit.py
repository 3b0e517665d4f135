"""Run a LeRobot policy directory through LeRobot's own rollout loop on a ttfkit env.

LeRobot 0.4.4's ``lerobot.scripts.lerobot_eval.rollout`` drives a gymnasium vector env whose
observations are ``agent_pos`` / ``environment_state`` / ``pixels`` and reads success from
``final_info["is_success"]`` when an episode ends, the convention of its own sim envs (gym-pusht,
gym-aloha), which terminate on success. ttfkit's Meta-World and Fetch envs do that with the env
option ``terminate_on_success=True`` (ttfkit's own evaluator does not need it), which
:func:`evaluate_in_lerobot` sets: the same protocol as ``ttfkit.envs.evaluate(..., stop_on_success=True)``.
A single ``pixels`` array reaches the policy as ``observation.image``, the name ``ttf export lerobot``
gives it; exports made before that (``observation.images.pixels``) get a rename step override.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

__all__ = ["evaluate_in_lerobot", "LeRobotRollout"]


@dataclass(frozen=True)
class LeRobotRollout:
    """Per-episode results of LeRobot's rollout (episode i used seed ``seeds[i]``)."""

    seeds: list[int]
    success: list[bool]
    returns: list[float]
    lengths: list[int]

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success)) if self.success else float("nan")


def evaluate_in_lerobot(policy_dir: str | os.PathLike, env_id: str, seeds: list[int],
                        max_steps: int | None = None, env_kwargs: dict | None = None,
                        generator: "torch.Generator | None" = None) -> LeRobotRollout:
    """Load ``policy_dir`` with LeRobot's factory and run one LeRobot ``rollout`` per seed
    (one env, so episodes use exactly the seeds given). Sampling noise comes from ``generator``
    when given, else from torch's global generator as in ``lerobot-eval``."""
    import torch
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    from lerobot.processor import PolicyProcessorPipeline
    from lerobot.scripts.lerobot_eval import rollout

    import ttfkit.envs  # noqa: F401  (registers the ttfkit/... ids)
    from ttfkit.envs import make_env

    policy = get_policy_class("ttfkit").from_pretrained(policy_dir)
    if generator is not None:  # rollout calls select_action(observation): bind the generator
        policy.select_action = functools.partial(policy.select_action, generator=generator)
    overrides = {}
    cameras = [k for k in policy.config.input_features if k.startswith("observation.images.")]
    if len(cameras) == 1 and "observation.image" not in policy.config.input_features:
        overrides = {"rename_observations_processor": {"rename_map": {"observation.image": cameras[0]}}}
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(Path(policy_dir)),
                                         preprocessor_overrides=overrides)
    identity = PolicyProcessorPipeline(steps=[])
    kwargs = {"terminate_on_success": True, **(env_kwargs or {})}
    if max_steps is not None:
        kwargs["max_episode_steps"] = max_steps
    factory = functools.partial(make_env, env_id, **kwargs)
    success, returns, lengths = [], [], []
    for seed in seeds:
        env = gym.vector.SyncVectorEnv([factory], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        try:
            with torch.inference_mode():
                out = rollout(env, policy, identity, identity, pre, post, seeds=[seed])
        finally:
            env.close()
        done = out["done"][0].numpy()
        length = int(np.argmax(done)) + 1 if done.any() else len(done)
        success.append(bool(out["success"][0, :length].any()))
        returns.append(float(out["reward"][0, :length].sum()))
        lengths.append(length)
    return LeRobotRollout(seeds=list(seeds), success=success, returns=returns, lengths=lengths)

