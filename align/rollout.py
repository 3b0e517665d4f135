"""Rollout value reward: score a candidate chunk by playing it out in a copy of the simulator.

From the current state of the evaluated episode (a shadow env kept in step with the evaluator, see
:class:`ttfkit.align.sim.ShadowEnvs`) the candidate's executed part ``chunk[start : start + steps]`` is
applied, then the base policy keeps acting (cheap sampling: ``flow_steps`` Euler steps per chunk, its own
observation window) until success, the episode's time limit or ``horizon`` steps after the chunk:

    r = success_bonus · success + return_scale · (mean env reward per look-ahead step)

Success dominates (Meta-World's per-step reward lies in [0, 10], so the default return term stays below
0.1); among failures, the shaped return orders the candidates. The simulator is a perfect world model
here, so this is the upper bound for search and the reference for deployable rewards (``critic``); it
is black-box (``differentiable = False``).

Cost: ``sim_steps`` counts every simulator step of the look-aheads, ``policy_evals`` the continuation's
network evaluations (not part of the aligner's NFE, which counts the proposal model). With
``workers > 0`` each worker process holds its own copies of the slots' envs (replaying the same seeds
and actions) and the candidates of a chunk are split across the workers; results are identical to the
in-process path because every candidate's continuation noise comes from a seed drawn in the parent.

Protocol (called by :class:`ttfkit.align.policy.AlignedPolicy`): ``reset_slot(j, seed)`` at episode
starts, ``check(obs)`` with the evaluator's observations, ``observe(actions)`` with the executed
actions (B, Da); ``__call__(chunks (N, H, Da) env units, context)`` with ``context["slot"]``.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import shutil
import tempfile
from collections import deque
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ttfkit.align.rewards import register_reward
from ttfkit.align.sim import ShadowEnvs, restore, snapshot

__all__ = ["RolloutValueReward", "RolloutTracker", "check_policy_view", "lookahead"]

logger = logging.getLogger(__name__)


@register_reward("rollout")
class RolloutValueReward:
    """Rollout value of candidate chunks (see module docstring).

    Args:
        policy: the base flow policy (continuation; its normaliser maps env units).
        env_id: the evaluated env id. n_envs: the evaluator's slots.
        horizon: K, look-ahead steps after the candidate's executed part.
        flow_steps: Euler steps of the continuation's chunk sampler.
        start, steps: executed part of a candidate (default: the policy's To-1 and n_action_steps).
        success_bonus, return_scale: the reward's two terms.
        workers: look-ahead worker processes (0: in this process).
        env_kwargs: options of the evaluated env (``max_episode_steps``; a pixel policy's ``pixels``,
            ``image_size``, ``camera``: the look-ahead renders what the policy reads, checked against its
            observation shapes). seed: base of the noise seeds.
    """

    differentiable = False

    def __init__(self, policy, env_id: str, *, n_envs: int = 1, horizon: int = 120, flow_steps: int = 2,
                 start: int | None = None, steps: int | None = None, success_bonus: float = 1.0,
                 return_scale: float = 0.01, workers: int = 0, env_kwargs: dict[str, Any] | None = None,
                 stop_on_success: bool = True, seed: int = 0) -> None:
        pc = policy.config
        self.start = pc.n_obs_steps - 1 if start is None else start
        self.steps = pc.n_action_steps if steps is None else steps
        if horizon < 0 or flow_steps < 1 or workers < 0 or self.start < 0 or self.steps < 1:
            raise ValueError(f"rollout reward needs horizon >= 0, flow_steps >= 1, workers >= 0, start >= 0, "
                             f"steps >= 1; got {horizon=}, {flow_steps=}, {workers=}, {self.start=}, {self.steps=}")
        if self.start + self.steps > pc.horizon:
            raise ValueError(f"executed part [{self.start}, {self.start + self.steps}) exceeds the chunk "
                             f"horizon {pc.horizon}")
        self.policy, self.env_id, self.n_envs = policy, env_id, n_envs
        self.options = dict(horizon=horizon, flow_steps=flow_steps, start=self.start, steps=self.steps,
                            success_bonus=success_bonus, return_scale=return_scale)
        self.seed = seed
        self.sim_steps = 0
        self.policy_evals = 0
        self._gens = [torch.Generator().manual_seed(seed) for _ in range(n_envs)]
        self.shadow = ShadowEnvs(env_id, n_envs, env_kwargs, stop_on_success=stop_on_success,
                                 history=pc.n_obs_steps)
        try:
            check_policy_view(self.shadow.envs[0], pc.obs_shapes, env_kwargs)
        except ValueError:
            self.shadow.close()
            raise
        self._pool = _Pool(policy, env_id, n_envs, env_kwargs, stop_on_success, workers) if workers else None

    # ----- evaluator protocol (forwarded by AlignedPolicy) -----
    def reset_slot(self, j: int, seed: int) -> None:
        self.shadow.reset_slot(j, seed)
        self._gens[j].manual_seed((self.seed << 32) + seed)
        if self._pool is not None:
            self._pool.broadcast(("reset", j, seed))

    def check(self, obs: dict[str, np.ndarray]) -> None:
        self.shadow.check(obs)

    def observe(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions, dtype=np.float32)
        self.shadow.step(actions)
        if self._pool is not None:
            self._pool.broadcast(("step", actions))

    @property
    def mismatches(self) -> int:
        return self.shadow.mismatches

    # ----- reward -----
    def __call__(self, x: Tensor, cond=None) -> Tensor:
        if not isinstance(cond, dict) or "slot" not in cond:
            raise KeyError("the rollout reward needs context {'slot': j} (AlignedPolicy provides it)")
        if x.ndim != 3:
            raise ValueError(f"rollout reward needs chunks (N, H, Da), got {tuple(x.shape)}")
        j = int(cond["slot"])
        if not self.shadow.active[j]:
            raise RuntimeError(f"rollout reward asked about slot {j}, which has no running episode")
        chunks = x.detach().cpu().numpy().astype(np.float32)
        seeds = torch.randint(0, 2**62, (len(chunks),), generator=self._gens[j]).tolist()
        steps_left = self.shadow.limit - int(self.shadow.steps[j])
        if self._pool is not None:
            results = self._pool.evaluate(j, chunks, seeds, steps_left, self.options)
        else:
            results = [lookahead(self.shadow.envs[j], self.policy, list(self.shadow.history[j]), c, steps_left=steps_left,
                                 seed=s, **self.options) for c, s in zip(chunks, seeds)]
        out = np.array([r for r, _, _ in results])
        self.sim_steps += sum(n for _, n, _ in results)
        self.policy_evals += sum(e for _, _, e in results)
        if not np.isfinite(out).all():
            raise ValueError(f"rollout reward produced non-finite values {out}")
        return torch.as_tensor(out, dtype=x.dtype, device=x.device)

    def close(self) -> None:
        self.shadow.close()
        if self._pool is not None:
            self._pool.close()


class RolloutTracker:
    """Base of rewards that consult a :class:`RolloutValueReward` (``self.rollout``) on the side, e.g. to
    label or probe candidates: forwards the evaluator protocol so its simulator copies stay in step."""

    differentiable = False

    def __init__(self, rollout: RolloutValueReward) -> None:
        self.rollout = rollout

    def reset_slot(self, j: int, seed: int) -> None:
        self.rollout.reset_slot(j, seed)

    def check(self, obs) -> None:
        self.rollout.check(obs)

    def observe(self, actions) -> None:
        self.rollout.observe(actions)


def check_policy_view(env, obs_shapes: dict, env_kwargs: dict | None = None) -> None:
    """Raise ValueError unless ``env``'s observations hold every key of ``obs_shapes`` (a policy's
    {key: shape}), with images (H, W, 3) matching the policy's (C, H, W); the message names both sides."""
    space = getattr(env.observation_space, "spaces", {})
    missing = [k for k in obs_shapes if k not in space]
    if missing:
        name = env.spec.id if env.spec else type(env).__name__
        raise ValueError(f"the look-ahead env {name} with options {env_kwargs or {}} gives no {missing} "
                         f"(keys {sorted(space)}), which the policy reads")
    for key, shape in obs_shapes.items():
        if len(shape) == 3:  # an image, as the policy's encoder decides (any camera key, robomimic's too)
            c, h, w = shape
            got = tuple(space[key].shape)
            if got != (h, w, c):
                raise ValueError(f"the look-ahead env renders {key!r} of shape {got} (options {env_kwargs or {}}), "
                                 f"the policy reads {tuple(shape)} (H, W = {h}, {w})")


@torch.no_grad()
def lookahead(env, policy, history: list[dict[str, np.ndarray]], chunk: np.ndarray, *, steps_left: int,
              horizon: int, flow_steps: int, start: int, steps: int, success_bonus: float, return_scale: float,
              seed: int) -> tuple[float, int, int]:
    """Play ``chunk[start:start+steps]`` then the base policy from ``env``'s state; the env is restored.

    ``history``: the policy's last To observations (env units, oldest first). Returns (reward, simulator
    steps, continuation network evaluations). Pure apart from the env, which is put back.
    """
    from ttfkit.align.search import sample_ode

    snap = snapshot(env)
    low, high = env.action_space.low, env.action_space.high
    gen = torch.Generator().manual_seed(seed)
    pc = policy.config
    hist = deque(history, maxlen=pc.n_obs_steps)
    budget = min(steps_left, steps + horizon)
    queue = list(chunk[start:start + steps])
    total, n, evals, success = 0.0, 0, 0, False
    try:
        while n < budget:
            if not queue:
                window = {k: torch.stack([policy._env_to_dataset(k, {k: o[k][None]})[0] for o in hist])[None]
                          for k in pc.obs_shapes}  # (1, To, ...)
                cond = policy.encode_obs(window)
                x = sample_ode(policy, 1, (pc.horizon, pc.action_dim), cond=cond, steps=flow_steps, generator=gen)
                evals += flow_steps
                plan = policy._unnormalize(pc.action_key, x)[0].cpu().numpy()
                queue = list(plan[pc.n_obs_steps - 1:pc.n_obs_steps - 1 + pc.n_action_steps])
            obs, reward, terminated, _, info = env.unwrapped.step(np.clip(queue.pop(0), low, high))
            hist.append(obs)
            total += float(reward)
            n += 1
            if info.get("is_success", False):
                success = True
                break
            if terminated:
                break
    finally:
        restore(env, snap)
    return success_bonus * success + return_scale * total / max(n, 1), n, evals


class _Pool:
    """Worker processes, each with its own copies of the slots' envs and of the base policy."""

    def __init__(self, policy, env_id, n_envs, env_kwargs, stop_on_success, workers: int) -> None:
        self._dir = tempfile.mkdtemp(prefix="ttfkit-rollout-")
        policy.save(f"{self._dir}/policy")
        ctx = mp.get_context("forkserver")
        self.conns, self.procs = [], []
        for _ in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, f"{self._dir}/policy", env_id, n_envs, env_kwargs,
                                                     stop_on_success), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        for c in self.conns:  # wait until every worker has its policy and envs
            reply = c.recv()
            if isinstance(reply, Exception):
                self.close()
                raise RuntimeError("a rollout worker failed to start") from reply

    def broadcast(self, msg) -> None:
        for c in self.conns:
            c.send(msg)

    def evaluate(self, j, chunks, seeds, steps_left, options) -> list[tuple[float, int, int]]:
        parts = [list(range(w, len(chunks), len(self.conns))) for w in range(len(self.conns))]
        for c, idx in zip(self.conns, parts):
            c.send(("eval", j, chunks[idx], [seeds[i] for i in idx], steps_left, options))
        out: list = [None] * len(chunks)
        for c, idx in zip(self.conns, parts):
            reply = c.recv()
            if isinstance(reply, Exception):
                raise RuntimeError(f"rollout worker failed on slot {j}") from reply
            for i, r in zip(idx, reply):
                out[i] = r
        return out

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send(("close",))
            except (BrokenPipeError, OSError):
                pass
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
        shutil.rmtree(self._dir, ignore_errors=True)


def _worker(conn, policy_dir, env_id, n_envs, env_kwargs, stop_on_success) -> None:
    torch.set_num_threads(1)
    import ttfkit.envs  # noqa: F401  (registers the ids)
    from ttfkit.policies import load

    try:
        policy = load(policy_dir).eval()
        shadow = ShadowEnvs(env_id, n_envs, env_kwargs, stop_on_success=stop_on_success,
                            history=policy.config.n_obs_steps)
    except Exception as err:  # noqa: BLE001 - reported to the parent, which raises
        conn.send(err)
        return
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg[0] == "close":
            break
        try:
            if msg[0] == "reset":
                shadow.reset_slot(msg[1], msg[2])
            elif msg[0] == "step":
                shadow.step(msg[1])
            else:
                _, j, chunks, seeds, steps_left, options = msg
                conn.send([lookahead(shadow.envs[j], policy, list(shadow.history[j]), c, steps_left=steps_left, seed=s,
                                     **options) for c, s in zip(chunks, seeds)])
        except Exception as err:  # noqa: BLE001 - reported to the parent, which raises
            conn.send(err)
    shadow.close()
