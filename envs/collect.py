"""Roll scripted experts into a zarr ``ReplayBuffer``: ``collect(env_id, n_episodes, out, ...)``.

Seeds. Episode ``i`` (``0 <= i < n_episodes``, attempts, kept or not) is reset with seed
``seed * 1_000_000 + i`` (``episode_seed``); its action noise comes from
``np.random.default_rng([episode_seed, 1])``. An episode is therefore a pure function of its seed,
so the store is identical for any number of worker processes: results are written in seed order.
The evaluator's default seeds (100_000 + i) never coincide with collection seeds.

Noise (DART-style). With ``noise = sigma > 0`` the executed action is
``clip(expert_action + N(0, sigma^2 I), -1, 1)``; the store's ``action`` is the expert's clean action
(the training label) and ``executed_action`` what the env received.

Store keys, one row per step (T = episode length): ``agent_pos`` (T, Dp) and ``environment_state``
(T, De) float32, optional ``pixels`` (T, H, W, 3) uint8 (one camera, ``pixels=True``) or one
``pixels_<camera>`` (T, H, W, 3) uint8 per camera of ``env_kwargs["cameras"]``
(``ttfkit.envs.rendering.CameraObservations``), ``action`` and ``executed_action`` (T, Da)
float32, ``reward`` (T,) float32, ``is_success`` (T,) bool (after the step). With
``environment_state=False`` the simulator's object poses are not stored (the pixel setting: a policy
sees cameras and ``agent_pos`` only; the scripted expert still reads them while collecting). Row t pairs the
observation before step t with the action taken at it. With ``stop_on_success`` (default) an
episode ends at its first success, as in ``ttfkit.envs.evaluate``.

Which episodes are kept: ``keep="successes"`` (default), ``"failures"`` or ``"all"``.

Resume and crash safety. The store's attrs record provenance (env id, expert, noise, seed rule,
package versions) and ``attempted_seeds`` / ``kept_seeds``, updated after each episode. Results are
consumed in seed order, so an interrupted run (Ctrl-C, crash) leaves a prefix of the seeds done;
calling ``collect`` again with the same arguments (any ``n_episodes``) collects only the missing
ones. Options that change the data (env id, noise, pixels, keep, ...) must match the store's.
"""

from __future__ import annotations

import importlib.metadata
import logging
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ttfkit.envs.registry import _check_id

__all__ = ["collect", "CollectReport", "episode_seed", "KEEP_MODES"]

logger = logging.getLogger(__name__)

SEED_STRIDE = 1_000_000
KEEP_MODES = ("successes", "failures", "all")
_MATCH_ATTRS = ("env_id", "seed", "noise", "pixels", "keep", "max_steps", "stop_on_success",
                "env_kwargs", "expert", "seed_rule", "environment_state")
_ATTR_DEFAULTS = {"environment_state": True}  # attrs added later: value of stores written before
_VERSIONED = ("ttfkit", "mujoco", "metaworld", "gymnasium", "gymnasium-robotics", "numpy", "zarr")


def episode_seed(seed: int, i: int) -> int:
    """Reset seed of collection episode ``i`` for run seed ``seed``."""
    if not 0 <= i < SEED_STRIDE:
        raise ValueError(f"episode index {i} must lie in [0, {SEED_STRIDE})")
    return seed * SEED_STRIDE + i


@dataclass(frozen=True)
class CollectReport:
    """Summary of a ``collect`` call.

    Attributes:
        path: the store.
        attempted: episodes done over the store's whole life (this call and earlier ones).
        kept: episodes stored; failed: attempted episodes that did not succeed.
        new_attempted: episodes rolled out by this call.
        n_steps: total stored steps.
    """

    path: str
    attempted: int
    kept: int
    failed: int
    new_attempted: int
    n_steps: int


def collect(env_id: str, n_episodes: int, out: str | os.PathLike, seed: int = 0, workers: int = 1,
            noise: float = 0.0, pixels: bool = False, keep: str = "successes",
            max_steps: int | None = None, stop_on_success: bool = True,
            env_kwargs: dict[str, Any] | None = None, environment_state: bool = True,
            on_episode: Callable[[int, bool, bool], None] | None = None) -> CollectReport:
    """Collect expert episodes with seeds ``episode_seed(seed, i)``, ``i < n_episodes``, into ``out``.

    Args:
        env_id: registered ``ttfkit/...`` id; its scripted expert (``make_expert``) acts.
        n_episodes: episodes to attempt in total (kept or not); already attempted ones are skipped.
        out: zarr store path (created if missing, resumed if present).
        seed: run seed (episode seeds in module docstring); must be >= 0.
        workers: worker processes (forkserver); 1 runs in this process.
        noise: std of the Gaussian noise on executed actions (DART); the label stays clean.
        pixels: also record ``pixels`` (env option ``pixels=True``; see ``env_kwargs`` for size/camera).
        keep: ``"successes"``, ``"failures"`` or ``"all"``.
        max_steps: episode time limit (default: the suite's).
        stop_on_success: end episodes at their first success.
        env_kwargs: extra env options (``image_size``, ``camera``; ``cameras``: a list of camera
            names, each recorded as ``pixels_<camera>``).
        environment_state: store ``environment_state`` (False: leave the object poses out).
        on_episode: called as ``on_episode(n_done_this_call, success, kept)`` after each episode.
    """
    _check_id(env_id)
    if keep not in KEEP_MODES:
        raise ValueError(f"keep={keep!r} must be one of {KEEP_MODES}")
    if not 0 < n_episodes <= SEED_STRIDE:
        raise ValueError(f"{n_episodes=} must lie in [1, {SEED_STRIDE}]")
    if seed < 0:
        raise ValueError(f"{seed=} must be >= 0")
    if noise < 0 or not np.isfinite(noise):
        raise ValueError(f"{noise=} must be a finite value >= 0")
    if workers < 1:
        raise ValueError(f"{workers=} must be >= 1")
    if max_steps is not None and max_steps <= 0:
        raise ValueError(f"{max_steps=} must be positive")
    from ttfkit.data.replay_buffer import ReplayBuffer
    from ttfkit.envs.experts import make_expert

    kwargs = dict(env_kwargs or {})
    if pixels:
        kwargs["pixels"] = True
    if max_steps is not None:
        kwargs["max_episode_steps"] = max_steps
    settings = {
        "env_id": env_id, "seed": int(seed), "noise": float(noise), "pixels": bool(pixels), "keep": keep,
        "max_steps": max_steps, "stop_on_success": bool(stop_on_success),
        "env_kwargs": {k: v for k, v in kwargs.items() if k not in ("pixels", "max_episode_steps")},
        "expert": make_expert(env_id).name, "seed_rule": f"seed * {SEED_STRIDE} + i",
        "environment_state": bool(environment_state),
    }
    buffer = _open_or_create(Path(out), settings, ReplayBuffer)
    attempted = list(buffer.attrs["attempted_seeds"])
    kept_seeds = list(buffer.attrs["kept_seeds"])
    done = set(attempted)
    todo = [episode_seed(seed, i) for i in range(n_episodes) if episode_seed(seed, i) not in done]
    logger.info("%s: %d episodes attempted before, %d to go", out, len(attempted), len(todo))

    job = (env_id, kwargs, float(noise), bool(stop_on_success), bool(environment_state))
    n_new = 0
    results = _results(job, todo, workers)
    try:
        for ep_seed, (episode, success) in zip(todo, results):
            keep_it = keep == "all" or (keep == "successes") == success
            if keep_it:
                buffer.add_episode(episode)
                kept_seeds.append(ep_seed)
            attempted.append(ep_seed)
            buffer.attrs.update({"attempted_seeds": attempted, "kept_seeds": kept_seeds})
            n_new += 1
            if on_episode is not None:
                on_episode(n_new, success, keep_it)
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()
    report = CollectReport(path=str(out), attempted=len(attempted), kept=len(kept_seeds),
                           failed=_n_failed(buffer, keep, attempted, kept_seeds), new_attempted=n_new,
                           n_steps=buffer.n_steps)
    logger.info("%s", report)
    return report


def _n_failed(buffer, keep: str, attempted: list[int], kept: list[int]) -> int:
    if keep == "successes":
        return len(attempted) - len(kept)
    if keep == "failures":
        return len(kept)
    return int(sum(1 for i in range(buffer.n_episodes) if not buffer.get_episode(i, ["is_success"])
                   ["is_success"].any()))


def _open_or_create(path: Path, settings: dict[str, Any], buffer_cls):
    """Open ``path`` for appending after checking its settings, or create it with provenance attrs."""
    if not path.exists():
        attrs = dict(settings, versions=_versions(), attempted_seeds=[], kept_seeds=[])
        return buffer_cls.create(path, attrs=attrs)
    buffer = buffer_cls.open(path, mode="a")
    attrs = dict(buffer.attrs)
    if "attempted_seeds" not in attrs:
        raise ValueError(f"{path}: not a ttfkit collection store (no 'attempted_seeds' attr); "
                         f"choose another --out")
    for key in _MATCH_ATTRS:
        if attrs.get(key, _ATTR_DEFAULTS.get(key)) != settings[key]:
            raise ValueError(f"{path}: cannot resume, store has {key}={attrs.get(key)!r} but this run "
                             f"asks for {settings[key]!r}")
    kept = list(attrs["kept_seeds"])
    if buffer.n_episodes == len(kept) + 1:  # crashed after add_episode, before the attrs update
        attempted = list(attrs["attempted_seeds"])
        nxt = _next_seed(settings["seed"], attempted)
        logger.warning("%s: recovering episode seed %d written just before an interruption", path, nxt)
        buffer.attrs.update({"attempted_seeds": attempted + [nxt], "kept_seeds": kept + [nxt]})
    elif buffer.n_episodes != len(kept):
        raise ValueError(f"{path}: store holds {buffer.n_episodes} episodes but attrs list "
                         f"{len(kept)} kept seeds; the store was modified outside collect")
    return buffer


def _next_seed(seed: int, attempted: list[int]) -> int:
    done = set(attempted)
    i = 0
    while episode_seed(seed, i) in done:
        i += 1
    return episode_seed(seed, i)


def _versions() -> dict[str, str]:
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# -- rollouts -----------------------------------------------------------------------------------------
def _results(job: tuple, seeds: list[int], workers: int):
    """Iterator of (episode, success) in the order of ``seeds``."""
    if workers == 1 or len(seeds) <= 1:
        return _serial(job, seeds)
    ctx = multiprocessing.get_context("forkserver")
    pool = ctx.Pool(min(workers, len(seeds)), initializer=_init_worker, initargs=(job,))
    return _PoolResults(pool, pool.imap(_worker_rollout, seeds))


class _PoolResults:
    """Ordered results from a pool; ``close()`` terminates the workers (also on Ctrl-C)."""

    def __init__(self, pool, iterator):
        self._pool = pool
        self._iterator = iterator

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._iterator)

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()


def _serial(job: tuple, seeds: list[int]):
    roller = _Roller(*job)
    try:
        for s in seeds:
            yield roller(s)
    finally:
        roller.close()


_WORKER: dict[str, Any] = {}  # per worker process: the env and expert built by _init_worker


def _init_worker(job: tuple) -> None:
    _WORKER["roller"] = _Roller(*job)


def _worker_rollout(ep_seed: int):
    return _WORKER["roller"](ep_seed)


class _Roller:
    """Owns one env + expert; ``roller(seed) -> (episode dict, success)``."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], noise: float, stop_on_success: bool,
                 environment_state: bool = True):
        from ttfkit.envs.experts import make_expert
        from ttfkit.envs.registry import make_env

        kwargs = dict(env_kwargs)
        cameras = kwargs.pop("cameras", None)
        self.env = make_env(env_id, **kwargs)
        if cameras:
            from ttfkit.envs.rendering import CameraObservations

            self.env = CameraObservations(self.env, cameras, kwargs.get("image_size", 96))
        self.environment_state = environment_state
        self.expert = make_expert(env_id)
        self.noise = noise
        self.stop_on_success = stop_on_success

    def __call__(self, ep_seed: int) -> tuple[dict[str, np.ndarray], bool]:
        rng = np.random.default_rng([ep_seed, 1])
        obs, _ = self.env.reset(seed=ep_seed)
        steps: dict[str, list] = {k: [] for k in (*obs, "action", "executed_action", "reward", "is_success")}
        success = False
        while True:
            clean = self.expert({k: v.copy() for k, v in obs.items()})
            executed = clean
            if self.noise > 0:
                executed = np.clip(clean + self.noise * rng.standard_normal(clean.shape), -1.0, 1.0)
            executed = executed.astype(np.float32)
            for key, value in obs.items():
                steps[key].append(value)
            obs, reward, terminated, truncated, info = self.env.step(executed)
            ok = bool(info["is_success"])
            success |= ok
            steps["action"].append(clean.astype(np.float32))
            steps["executed_action"].append(executed)
            steps["reward"].append(np.float32(reward))
            steps["is_success"].append(ok)
            if terminated or truncated or (ok and self.stop_on_success):
                break
        episode = {k: np.stack(v) for k, v in steps.items()
                   if self.environment_state or k != "environment_state"}
        episode["is_success"] = episode["is_success"].astype(bool)
        return episode, success

    def close(self) -> None:
        self.env.close()
