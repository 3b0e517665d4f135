"""Closed-loop evaluation: ``evaluate(policy, env_id, n_episodes, seed=...) -> EvalResult``.

Protocol (v2).
- Episode ``i`` is reset with seed ``seed + i`` (default ``seed=100_000``, Diffusion Policy's test
  seeds; ``ttfkit.envs.collect`` uses ``seed * 1_000_000 + i``, so default evaluation layouts never
  coincide with demonstration layouts).
- Episodes run on ``n_envs`` env slots (``ttfkit.envs.slots``), in this process (``workers=0``) or
  spread over worker processes that pass observations and actions through shared memory.
- ``policy.reset()`` is called once before the first episode. When slot j starts episode i, the
  evaluator calls ``policy.reset_slot(j, seed=seed + i)`` if the policy has that method (chunk
  policies: per-slot history, queue and noise generator seeded by the episode's seed, so every
  episode's outcome is the same for any n_envs, worker layout or machine load). A policy without
  ``reset_slot`` gets ``reset()`` before every episode when n_envs is 1 (as before protocol v2);
  with more slots it must keep no per-episode state (scripted experts).
- Refill: a slot whose episode ended starts the next pending episode at the next step that is a
  multiple of ``sync_every`` (default: the policy's n_action_steps; at once when nothing else runs),
  never waiting for a whole batch. A chunk policy then re-plans all its rows in one call; with
  refill at arbitrary steps its rows fall out of phase and the batched call saves little (measured,
  docs/results/2026-11-30/eval-scale). ``sync_every=1`` refills at once.
- Every step ``policy.select_action(obs)`` is called once with the observations of all ``n_envs``
  slots: ``obs`` is a dict of np.ndarray (n_envs, ...) in env units (pixels uint8 (n_envs, H, W, 3)),
  row j = slot j; rows of slots with no episode left hold their last observation and their actions
  are ignored. The policy returns actions (n_envs, Da) (np.ndarray or torch.Tensor).
- An episode succeeds if ``info["is_success"]`` is True at any step (Meta-World's convention). With
  ``stop_on_success=True`` (default) it ends at its first success; otherwise at the time limit.
- ``EvalResult`` has per-episode success/return/length/seed in seed order, the success rate with a
  Wilson 95% interval and the exact env spec (JSON); ``to_json``/``from_json`` round-trip it.

Default layout: ``n_envs=DEFAULT_N_ENVS`` (a constant, not the CPU count, so the policy's batch is the
same on every machine; chunk policies are batch-size invariant anyway, see
``ChunkPolicy.predict_action_chunk``) and one worker per core up to n_envs (``workers`` only changes
speed, never results).

Videos: with ``video_dir``, episodes 0 .. n_videos-1 are rendered (``render_size`` frames from the
env's camera) and written as mp4 through imageio/ffmpeg by the process that runs them, named
``<task>_ep<i>_seed<s>_<success|failure>.mp4``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from ttfkit.envs.registry import _check_id, env_spec_json, make_env
from ttfkit.envs.slots import SlotPool

__all__ = ["evaluate", "EvalResult", "wilson_interval", "DEFAULT_EVAL_SEED", "DEFAULT_N_ENVS",
           "make_vector_env"]

logger = logging.getLogger(__name__)

DEFAULT_EVAL_SEED = 100_000
DEFAULT_N_ENVS = 8  # slots when n_envs is not given (then capped at n_episodes); see the module docstring


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (scipy's ``binomtest(...).proportion_ci(method=
    "wilson")``, no continuity correction); (0, 1) when n = 0."""
    from scipy.stats import binomtest

    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes=} {n=}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence=}")
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


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
             on_episode: Callable[[int, bool], None] | None = None, workers: int | None = None,
             sync_every: int | None = None, timings: dict[str, Any] | None = None) -> EvalResult:
    """Roll ``policy`` out on ``n_episodes`` seeded episodes of ``env_id`` (protocol: module docstring).

    Args:
        policy: object with ``reset()``, ``select_action(obs: dict (n_envs, ...)) -> (n_envs, Da)`` and
            optionally ``reset_slot(slot, seed=...)``.
        env_id: a registered ``ttfkit/...`` id.
        n_episodes: number of episodes (seeds ``seed .. seed + n_episodes - 1``).
        seed: first episode seed.
        n_envs: env slots, the policy's batch (default ``DEFAULT_N_ENVS``; at most n_episodes).
        workers: processes running the envs (default: 0 when n_envs is 1, else min(CPU count,
            n_envs)); 0 runs every env in this process.
        video_dir: write mp4 videos of the first ``n_videos`` episodes there.
        max_steps: episode time limit (default: the suite's, e.g. 500 Meta-World, 50 Fetch).
        stop_on_success: end an episode at its first success.
        env_kwargs: extra env options (``pixels=True``, ``image_size``, ``camera``).
        render_size: video frame side in pixels.
        policy_name: stored in the result (default: the policy's class name).
        on_episode: called as ``on_episode(n_done, success)`` after every finished episode (in the
            order episodes finish, not seed order).
        sync_every: a slot whose episode ended starts the next one at the next step that is a
            multiple of this (counted from the last time every slot was idle), so that chunk
            policies re-plan all rows in the same call (default: the policy's
            ``config.n_action_steps`` when it has one, else 1 = refill at once). Speed only.
        timings: a dict to fill with the wall-time breakdown (seconds): ``total_s``, ``policy_s``
            (select_action), ``env_wait_s`` (stepping the slots, transfer included), ``sim_s`` (env
            step/reset/render time per process), ``startup_s`` (building envs and workers), ``steps``.
    """
    start_time = time.perf_counter()
    _check_id(env_id)
    if n_episodes <= 0:
        raise ValueError(f"{n_episodes=} must be positive")
    if n_envs is not None and n_envs <= 0:
        raise ValueError(f"{n_envs=} must be positive")
    n_envs = min(n_episodes, n_envs or DEFAULT_N_ENVS)
    if workers is None:
        workers = 0 if n_envs == 1 else min(n_envs, os.cpu_count() or 1)
    if not 0 <= workers:
        raise ValueError(f"{workers=} must be >= 0")
    workers = min(workers, n_envs)
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

    seeds = [seed + i for i in range(n_episodes)]
    outcome: list[tuple | None] = [None] * n_episodes
    reset_slot = getattr(policy, "reset_slot", None)
    active = np.zeros(n_envs, dtype=bool)
    n_done = n_started = 0
    if sync_every is None:
        sync_every = int(getattr(getattr(policy, "config", None), "n_action_steps", 1) or 1)
    if sync_every < 1:
        raise ValueError(f"{sync_every=} must be >= 1")
    policy_s, steps = 0.0, 0

    def handle(events: list[tuple]) -> None:
        nonlocal n_done, n_started
        for event in events:
            if event[0] == "start":
                _, slot, ep = event
                active[slot] = True
                n_started += 1
                if reset_slot is not None:
                    reset_slot(slot, seed=seeds[ep])
                elif n_envs == 1 and n_started > 1:
                    policy.reset()  # one slot: a policy without reset_slot is reset per episode
            else:
                _, slot, ep, ok, ret, length, video = event
                active[slot] = False
                outcome[ep] = (bool(ok), float(ret), int(length), video)
                n_done += 1
                if on_episode is not None:
                    on_episode(n_done, bool(ok))

    pool = SlotPool(env_id, kwargs, n_envs, workers, seeds, limit, stop_on_success,
                    video_dir=str(video_dir) if want_video else None, n_videos=n_videos if want_video else 0)
    try:
        policy.reset()
        handle(pool.start())
        startup_s = time.perf_counter() - start_time
        phase = 0  # steps since every slot was last (re)filled together
        while active.any() or n_started < n_episodes:
            if not active.any():  # nothing running to stay in step with: refill now
                handle(pool.refill())
                phase = 0
                continue
            t0 = time.perf_counter()
            action = policy.select_action({k: v.copy() for k, v in pool.obs.items()})
            action = _as_actions(action, n_envs, pool.action_shape)
            policy_s += time.perf_counter() - t0
            phase += 1
            handle(pool.step(action, active, refill=n_started < n_episodes and phase % sync_every == 0))
            steps += 1
            if steps % 500 == 0:
                logger.info("%s: %d/%d episodes done", env_id, n_done, n_episodes)
    finally:
        pool.close()
    if timings is not None:
        timings.update(total_s=time.perf_counter() - start_time, policy_s=policy_s, startup_s=startup_s,
                       env_wait_s=pool.timings["wait_s"], sim_s=list(pool.timings["sim_s"]), steps=steps,
                       n_envs=n_envs, workers=workers)
    return EvalResult(env_id=env_id, policy=policy_name or type(policy).__name__, seeds=tuple(seeds),
                      successes=tuple(o[0] for o in outcome), returns=tuple(o[1] for o in outcome),
                      lengths=tuple(o[2] for o in outcome), env_spec=spec_json, max_steps=limit,
                      stop_on_success=stop_on_success, videos=tuple(o[3] for o in outcome if o[3]))


def make_vector_env(env_id: str, n_envs: int, **kwargs: Any) -> gym.vector.VectorEnv:
    """A gymnasium vector env of ``make_env(env_id, **kwargs)`` (``AsyncVectorEnv`` with forkserver
    workers for n_envs > 1, else ``SyncVectorEnv``); the previous evaluator's, kept for benchmarks."""
    fns = [functools.partial(make_env, env_id, **kwargs) for _ in range(n_envs)]
    if n_envs > 1:
        return gym.vector.AsyncVectorEnv(fns, context="forkserver")
    return gym.vector.SyncVectorEnv(fns)


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
