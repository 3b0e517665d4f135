"""Simulator look-ahead reward: copy a MuJoCo env's state, execute a candidate chunk, read reward/success.

Black-box (``differentiable = False``): for best-of-N and SMC, not guidance.

Snapshots (:func:`snapshot` / :func:`restore`) hold a copy of MuJoCo's ``MjData``; restoring sets the
integration state (``mj_setState(..., mjSTATE_INTEGRATION)``) and then copies every array field in place
(the derived quantities of the last step too, which envs read for observations and rewards), so the
env's own ``data`` object is kept and replays are bit-exact; plus copies of the plain Python attributes (numbers, strings, numpy arrays and
generators) of the unwrapped env and of a wrapped inner env (``_env``, as in ttfkit's Meta-World
wrapper), which is where Meta-World and gymnasium-robotics keep step counters, previous observations
and goals. Look-ahead steps go through ``env.unwrapped.step`` (no TimeLimit bookkeeping).

:class:`ShadowEnvs` mirrors the evaluator's envs (``ttfkit.envs.evaluate`` runs its own, possibly in
other processes): it follows the evaluator protocol (``reset_slot(j, seed)`` per episode), replays every
executed action, and checks at each step that its observation equals the one the evaluator passed in,
so look-ahead starts from the real state.
"""

from __future__ import annotations

import copy
import logging
from collections import deque
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ttfkit.align.rewards import register_reward

__all__ = ["SimLookaheadReward", "ShadowEnvs", "snapshot", "restore"]

logger = logging.getLogger(__name__)

_PLAIN = (int, float, bool, str, bytes, type(None), np.ndarray, np.generic, np.random.Generator)


@register_reward("sim")
class SimLookaheadReward:
    """r(chunk) = return of executing ``chunk[start : start + steps]`` from the current simulator state,
    plus ``success_bonus`` if the env reports success on any of those steps.

    Args:
        start: first executed index of the chunk (a policy executes from index To-1).
        steps: number of executed actions (a policy's n_action_steps); None: to the end of the chunk.
        success_bonus: added once when ``info["is_success"]`` becomes True during the look-ahead.
        reward_scale: multiplies the summed env reward.

    ``cond`` must be a dict with ``"sim_env"``: the gymnasium env (at the current state) to copy. Chunks
    are (N, H, Da) in env units. The env is restored to its state before the call.
    """

    differentiable = False

    def __init__(self, start: int = 0, steps: int | None = None, success_bonus: float = 10.0,
                 reward_scale: float = 1.0) -> None:
        if start < 0 or (steps is not None and steps < 1):
            raise ValueError(f"need start >= 0 and steps >= 1, got {start=}, {steps=}")
        self.start, self.steps, self.success_bonus, self.reward_scale = start, steps, success_bonus, reward_scale

    def __call__(self, x: Tensor, cond=None) -> Tensor:
        if not isinstance(cond, dict) or "sim_env" not in cond:
            raise KeyError("the sim reward needs cond={'sim_env': env} (an env at the current state)")
        if x.ndim != 3:
            raise ValueError(f"sim reward needs chunks (N, H, Da), got {tuple(x.shape)}")
        env = cond["sim_env"]
        stop = x.shape[1] if self.steps is None else self.start + self.steps
        actions = x[:, self.start:stop].detach().cpu().numpy().astype(np.float32)  # (N, steps, Da)
        low, high = env.action_space.low, env.action_space.high
        snap = snapshot(env)
        out = np.zeros(x.shape[0])
        try:
            for i in range(x.shape[0]):
                restore(env, snap)
                total, success = 0.0, False
                for a in actions[i]:
                    _, reward, terminated, _, info = env.unwrapped.step(np.clip(a, low, high))
                    total += float(reward)
                    success |= bool(info.get("is_success", False))
                    if terminated:
                        break
                out[i] = self.reward_scale * total + self.success_bonus * success
        finally:
            restore(env, snap)
        return torch.as_tensor(out, dtype=x.dtype, device=x.device)


class ShadowEnvs:
    """Copies of the evaluator's envs, one per slot, kept in step by replaying seeds and actions.

    Follows the evaluator protocol (``ttfkit.envs.evaluate``): ``reset_slot(j, seed)`` when slot ``j``
    starts an episode, ``step(actions)`` with the (B, Da) actions about to be executed, and
    ``check(obs)`` with the observations the evaluator passed in, so look-ahead starts from the real
    state. A slot's episode is over (the slot idles until its next ``reset_slot``) after its first
    success (with ``stop_on_success``, the evaluator's default) or at the time limit, exactly when the
    evaluator ends it; idle slots are neither checked nor stepped.

    Args:
        env_id: the evaluated id. n_envs: the evaluator's slots.
        env_kwargs: options passed to ``make_env`` (as given to ``evaluate``; no rendering needed).
        stop_on_success: as given to ``evaluate``.
        atol: tolerance of the observation check.
        history: how many of each slot's latest observations ``history[j]`` keeps (oldest first; at an
            episode start the first one repeated, as a policy pads its observation window).
    """

    def __init__(self, env_id: str, n_envs: int, env_kwargs: dict[str, Any] | None = None,
                 stop_on_success: bool = True, atol: float = 1e-4, history: int = 1) -> None:
        from ttfkit.envs import make_env

        if n_envs < 1:
            raise ValueError(f"{n_envs=} must be >= 1")
        self.envs = [make_env(env_id, **(env_kwargs or {})) for _ in range(n_envs)]
        self.env_id, self.n_envs, self.atol, self.stop_on_success = env_id, n_envs, atol, stop_on_success
        self.limit = self.envs[0].spec.max_episode_steps
        self.mismatches = 0
        self.seeds: list[int | None] = [None] * n_envs
        self.steps = np.zeros(n_envs, dtype=np.int64)  # steps taken in the current episode
        self.active = np.zeros(n_envs, dtype=bool)
        self.history = [deque(maxlen=history) for _ in range(n_envs)]

    def reset_slot(self, j: int, seed: int) -> None:
        """Slot ``j`` starts an episode reset with ``seed``."""
        obs, _ = self.envs[j].reset(seed=seed)
        self.history[j].extend([obs] * self.history[j].maxlen)
        self.seeds[j], self.steps[j], self.active[j] = seed, 0, True

    def check(self, obs: dict[str, np.ndarray]) -> None:
        """Compare the active shadows' observations with the evaluator's batch ``obs`` (slot order)."""
        for j in np.flatnonzero(self.active):
            for key, val in self.history[j][-1].items():
                if key in obs and not np.allclose(np.asarray(obs[key])[j], val, atol=self.atol):
                    self.mismatches += 1
                    logger.warning("shadow env %d (seed %s) diverged from the evaluator on %r at step %d",
                                   j, self.seeds[j], key, self.steps[j])
                    break

    def step(self, actions: np.ndarray) -> None:
        """Apply the actions the evaluator is about to execute (B, Da) to the active slots."""
        actions = np.asarray(actions, dtype=np.float32)
        for j in np.flatnonzero(self.active):
            obs, _, terminated, _, info = self.envs[j].unwrapped.step(actions[j])
            self.history[j].append(obs)
            self.steps[j] += 1
            success = bool(info.get("is_success", False)) and self.stop_on_success
            if terminated or success or (self.limit is not None and self.steps[j] >= self.limit):
                self.active[j] = False

    def close(self) -> None:
        for env in self.envs:
            env.close()


def snapshot(env) -> dict:
    """Full MuJoCo integration state plus copies of plain Python attributes (see module docstring)."""
    import mujoco

    objs = _sim_objects(env)
    model, data = _mujoco_handles(objs)
    saved = copy.copy(data)
    attrs = [{k: copy.deepcopy(v) for k, v in vars(o).items() if _is_plain(v)} for o in objs]
    return {"data": saved, "attrs": attrs}


def restore(env, snap: dict) -> None:
    """Put ``env`` back into the state saved by :func:`snapshot` (mutates env)."""
    import mujoco

    objs = _sim_objects(env)
    model, data = _mujoco_handles(objs)
    saved = snap["data"]
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, saved, state, spec)
    mujoco.mj_setState(model, data, state, spec)
    for name in _array_fields(data):
        dst, src = getattr(data, name), getattr(saved, name)
        if dst.shape == src.shape:
            dst[...] = src
    for o, attrs in zip(objs, snap["attrs"]):
        for k, v in attrs.items():
            cur = getattr(o, k, None)
            if isinstance(v, np.ndarray) and isinstance(cur, np.ndarray) and cur.shape == v.shape \
                    and cur.dtype == v.dtype and cur.flags.writeable:
                cur[...] = v  # in place: some envs keep views into MjData (Meta-World's init pads)
            else:
                setattr(o, k, copy.deepcopy(v))


def _array_fields(data) -> list[str]:
    """Writable numpy array fields of an MjData (cached per class)."""
    names = _ARRAY_FIELDS.get(type(data))
    if names is None:
        names = []
        for name in dir(data):
            if name.startswith("_"):
                continue
            try:
                val = getattr(data, name)
            except Exception:  # noqa: BLE001 - some bindings raise on access
                continue
            if isinstance(val, np.ndarray) and val.flags.writeable:
                names.append(name)
        _ARRAY_FIELDS[type(data)] = names
    return names


_ARRAY_FIELDS: dict[type, list[str]] = {}


def _sim_objects(env) -> list:
    objs, e = [], env.unwrapped
    while e is not None and all(e is not o for o in objs):
        objs.append(e)
        e = getattr(e, "_env", None)
    return objs


def _mujoco_handles(objs):
    import mujoco

    for o in reversed(objs):
        model, data = getattr(o, "model", None), getattr(o, "data", None)
        if isinstance(model, mujoco.MjModel) and isinstance(data, mujoco.MjData):
            return model, data
    raise ValueError(f"no MuJoCo model/data found on {[type(o).__name__ for o in objs]}")


def _is_plain(v) -> bool:
    if isinstance(v, _PLAIN):
        return True
    if isinstance(v, (tuple, list)) and len(v) < 64:
        return all(isinstance(x, _PLAIN) for x in v)
    return False
