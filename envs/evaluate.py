"""Closed-loop evaluation: ``evaluate(policy, env_id, n_episodes, seed=...) -> EvalResult``.

Protocol.
- Episode ``i`` is reset with seed ``seed + i`` (default ``seed=100_000``, Diffusion Policy's test
  seeds; ``ttfkit.envs.collect`` uses ``seed * 1_000_000 + i``, so default evaluation layouts never
  coincide with demonstration layouts).
- Episodes run in batches of ``n_envs`` in lockstep on gymnasium vector envs (``AsyncVectorEnv`` with
  one process per env when ``n_envs > 1``, ``SyncVectorEnv`` otherwise). ``policy.reset()`` is
  called at the start of every batch (``reset(seed=first episode seed of the batch)`` when the
  policy's ``reset`` takes a seed, so stochastic policies roll out reproducibly), then ``policy.select_action(obs)`` once per step on the whole
  batch: ``obs`` is a dict of np.ndarray (B, ...) in env units (pixels uint8 (B, H, W, 3)), and
  the policy returns actions (B, Da) (np.ndarray or torch.Tensor). The last batch is padded with
  extra envs whose episodes are discarded, so B is always ``n_envs``.
- An episode succeeds if ``info["is_success"]`` is True at any step (Meta-World's convention). With
  ``stop_on_success=True`` (default) it ends at its first success; otherwise at the time limit.
  Finished envs keep receiving actions until the batch ends, but their steps are not counted.
- ``EvalResult`` has per-episode success/return/length/seed, the success rate with a Wilson 95%
  interval and the exact env spec (JSON); ``to_json``/``from_json`` round-trip it.

Videos: with ``video_dir``, the first ``n_videos`` episodes are rendered (``render_size`` frames
from the env's camera) and written as mp4 through imageio/ffmpeg, named
``<task>_ep<i>_seed<s>_<success|failure>.mp4``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from ttfkit.envs.registry import _check_id, env_spec_json, make_env

__all__ = ["evaluate", "EvalResult", "wilson_interval", "make_vector_env", "DEFAULT_EVAL_SEED"]

logger = logging.getLogger(__name__)

DEFAULT_EVAL_SEED = 100_000


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% for the default z); (0, 1) when n = 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes=} {n=}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


_PER_EPISODE = ("seeds", "successes", "returns", "lengths")  # EvalResult's per-episode tuples


@dataclass(frozen=True)
class EvalResult:
    """Outcome of ``evaluate``: one entry per episode, in seed order.

    Attributes:
        env_id: the evaluated ``ttfkit/...`` id.
        policy: a description of the policy (class name, checkpoint path or expert name).
        seeds: reset seed of each episode.
        successes: whether ``info["is_success"]`` was True at some step.
        returns: sum of rewards over the counted steps.
        lengths: counted steps (to the first success with ``stop_on_success``, else the time limit).
        env_spec: gymnasium ``EnvSpec.to_json()`` of the evaluated env (kwargs included).
        max_steps: time limit used; stop_on_success: whether episodes ended at their first success.
        videos: paths of the written videos.
    """

    env_id: str
    policy: str
    seeds: tuple[int, ...]
    successes: tuple[bool, ...]
    returns: tuple[float, ...]
    lengths: tuple[int, ...]
    env_spec: str
    max_steps: int
    stop_on_success: bool = True
    videos: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        n = len(self.seeds)
        if not len(self.successes) == len(self.returns) == len(self.lengths) == n:
            raise ValueError(f"per-episode fields differ in length: seeds {n}, successes "
                             f"{len(self.successes)}, returns {len(self.returns)}, lengths {len(self.lengths)}")

    @property
    def n_episodes(self) -> int:
        return len(self.seeds)

    @property
    def n_successes(self) -> int:
        return int(sum(self.successes))

    @property
    def success_rate(self) -> float:
        return self.n_successes / self.n_episodes if self.n_episodes else 0.0

    @property
    def ci_low(self) -> float:
        return wilson_interval(self.n_successes, self.n_episodes)[0]

    @property
    def ci_high(self) -> float:
        return wilson_interval(self.n_successes, self.n_episodes)[1]

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else 0.0

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.lengths)) if self.lengths else 0.0

    def head(self, n: int) -> "EvalResult":
        """The first ``n`` episodes (all of them when there are fewer)."""
        return dataclasses.replace(self, **{k: getattr(self, k)[:n] for k in _PER_EPISODE})

    def extended(self, more: "EvalResult") -> "EvalResult":
        """This result followed by ``more``'s episodes (same env and protocol; the caller's to ensure)."""
        return dataclasses.replace(self, **{k: getattr(self, k) + getattr(more, k) for k in _PER_EPISODE})

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(success_rate=self.success_rate, ci_low=self.ci_low, ci_high=self.ci_high,
                   n_episodes=self.n_episodes, mean_return=self.mean_return, mean_length=self.mean_length)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "EvalResult":
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - set(data) - {"videos", "stop_on_success"}
        if missing:
            raise KeyError(f"EvalResult JSON lacks {sorted(missing)}")
        kwargs = {k: v for k, v in data.items() if k in names}
        for key in (*_PER_EPISODE, "videos"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    def table(self) -> str:
        """A short human-readable summary."""
        return (f"{self.env_id}  policy={self.policy}\n"
                f"  success {self.n_successes}/{self.n_episodes} = {self.success_rate:.1%} "
                f"(Wilson 95% CI {self.ci_low:.1%} - {self.ci_high:.1%})\n"
                f"  mean return {self.mean_return:.2f}   mean length {self.mean_length:.1f} "
                f"(limit {self.max_steps}, stop_on_success={self.stop_on_success})")


def evaluate(policy: Any, env_id: str, n_episodes: int, seed: int = DEFAULT_EVAL_SEED,
             n_envs: int | None = None, video_dir: str | os.PathLike | None = None, n_videos: int = 4,
             max_steps: int | None = None, stop_on_success: bool = True,
             env_kwargs: dict[str, Any] | None = None, render_size: int = 128,
             policy_name: str | None = None,
             on_episode: Callable[[int, bool], None] | None = None) -> EvalResult:
    """Roll ``policy`` out on ``n_episodes`` seeded episodes of ``env_id`` (protocol: module docstring).

    Args:
        policy: object with ``reset()`` and ``select_action(obs: dict (B, ...)) -> (B, Da)``.
        env_id: a registered ``ttfkit/...`` id.
        n_episodes: number of episodes (seeds ``seed .. seed + n_episodes - 1``).
        seed: first episode seed.
        n_envs: parallel envs (default: CPU count, at most n_episodes); 1 runs in-process.
        video_dir: write mp4 videos of the first ``n_videos`` episodes there.
        max_steps: episode time limit (default: the suite's, e.g. 500 Meta-World, 50 Fetch).
        stop_on_success: end an episode at its first success.
        env_kwargs: extra env options (``pixels=True``, ``image_size``, ``camera``).
        render_size: video frame side in pixels.
        policy_name: stored in the result (default: the policy's class name).
        on_episode: called as ``on_episode(n_done, success)`` after every finished episode.
    """
    _check_id(env_id)
    if n_episodes <= 0:
        raise ValueError(f"{n_episodes=} must be positive")
    n_envs = min(n_episodes, n_envs or os.cpu_count() or 1)
    if n_envs <= 0:
        raise ValueError(f"{n_envs=} must be positive")
    kwargs = dict(env_kwargs or {})
    if max_steps is not None:
        if max_steps <= 0:
            raise ValueError(f"{max_steps=} must be positive")
        kwargs["max_episode_steps"] = max_steps
    limit = max_steps or gym.spec(env_id).max_episode_steps
    want_video = video_dir is not None and n_videos > 0
    if want_video:
        kwargs.update(render_mode="rgb_array", render_size=render_size)
    spec_json = env_spec_json(env_id, **kwargs)

    envs = make_vector_env(env_id, n_envs, **kwargs)
    seeds = [seed + i for i in range(n_episodes)]
    successes: list[bool] = []
    returns: list[float] = []
    lengths: list[int] = []
    videos: list[str] = []
    try:
        for start in range(0, n_episodes, n_envs):
            batch = seeds[start:start + n_envs]
            pad = [batch[-1] + 1 + j for j in range(n_envs - len(batch))]  # discarded episodes
            record = [start + j < n_videos for j in range(len(batch))] if want_video else []
            result = _run_batch(policy, envs, batch + pad, len(batch), limit, stop_on_success, record)
            for j, (ok, ret, length, frames) in enumerate(zip(*result)):
                successes.append(ok)
                returns.append(ret)
                lengths.append(length)
                if frames:
                    videos.append(_write_video(Path(video_dir), env_id, start + j, batch[j], ok, frames,
                                               fps=int(envs.metadata.get("render_fps", 30))))
                if on_episode is not None:
                    on_episode(len(successes), ok)
            logger.info("%s: %d/%d episodes, %d successes", env_id, len(successes), n_episodes,
                        sum(successes))
    finally:
        envs.close()
    return EvalResult(env_id=env_id, policy=policy_name or type(policy).__name__, seeds=tuple(seeds),
                      successes=tuple(successes), returns=tuple(returns), lengths=tuple(lengths),
                      env_spec=spec_json, max_steps=limit, stop_on_success=stop_on_success,
                      videos=tuple(videos))


def make_vector_env(env_id: str, n_envs: int, **kwargs: Any) -> gym.vector.VectorEnv:
    """The evaluator's vector env: ``AsyncVectorEnv`` (forkserver workers) for n_envs > 1, else
    ``SyncVectorEnv``; every sub-env is ``make_env(env_id, **kwargs)``."""
    fns = [functools.partial(make_env, env_id, **kwargs) for _ in range(n_envs)]
    if n_envs > 1:
        return gym.vector.AsyncVectorEnv(fns, context="forkserver")
    return gym.vector.SyncVectorEnv(fns)


def _reset_policy(policy: Any, seed: int) -> None:
    """``policy.reset(seed=...)`` when the policy takes a seed (its sampling noise then depends only
    on the batch's first episode seed, so a rerun reproduces the rollouts), else ``policy.reset()``."""
    if "seed" in inspect.signature(policy.reset).parameters:
        policy.reset(seed=seed)
    else:
        policy.reset()


def _run_batch(policy: Any, envs: gym.vector.VectorEnv, seeds: list[int], n_real: int, limit: int,
               stop_on_success: bool, record: list[bool]):
    """One lockstep batch; returns per real episode (success, return, length, frames)."""
    n = envs.num_envs
    _reset_policy(policy, seeds[0])
    obs, _ = envs.reset(seed=seeds)
    active = np.ones(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    ret = np.zeros(n)
    length = np.zeros(n, dtype=np.int64)
    frames: list[list[np.ndarray]] = [[] for _ in range(n)]
    want_frames = any(record)
    if want_frames:
        _grab_frames(envs, frames, active, record)
    for _ in range(limit):
        action = _as_actions(policy.select_action(obs), n, envs.single_action_space.shape)
        obs, reward, terminated, truncated, info = envs.step(action)
        ret += np.where(active, reward, 0.0)
        length += active
        step_success = np.asarray(info.get("is_success", np.zeros(n, dtype=bool)), dtype=bool)
        success |= step_success & active
        if want_frames:
            _grab_frames(envs, frames, active, record)
        done = np.asarray(terminated) | np.asarray(truncated)
        if stop_on_success:
            done |= step_success
        active &= ~done
        if not active[:n_real].any():
            break
    return (success[:n_real].tolist(), ret[:n_real].tolist(), length[:n_real].tolist(),
            [frames[j] if j < len(record) and record[j] else [] for j in range(n_real)])


def _grab_frames(envs: gym.vector.VectorEnv, frames: list[list[np.ndarray]], active: np.ndarray,
                 record: list[bool]) -> None:
    images = envs.call("render")
    for j, want in enumerate(record):
        if want and active[j]:
            frames[j].append(np.asarray(images[j]))


def _as_actions(action: Any, n: int, shape: tuple[int, ...]) -> np.ndarray:
    if hasattr(action, "detach"):
        action = action.detach().cpu().numpy()
    action = np.asarray(action, dtype=np.float32)
    if action.shape != (n, *shape):
        raise ValueError(f"policy.select_action returned shape {action.shape}; expected {(n, *shape)} "
                         f"(one action per env)")
    if not np.isfinite(action).all():
        raise ValueError("policy.select_action returned non-finite actions")
    return action


def _write_video(video_dir: Path, env_id: str, episode: int, seed: int, success: bool,
                 frames: list[np.ndarray], fps: int) -> str:
    import imageio.v2 as imageio

    video_dir.mkdir(parents=True, exist_ok=True)
    task = env_id.split("/", 1)[1]
    path = video_dir / f"{task}_ep{episode:03d}_seed{seed}_{'success' if success else 'failure'}.mp4"
    imageio.mimsave(path, frames, fps=fps, macro_block_size=1)
    return str(path)
