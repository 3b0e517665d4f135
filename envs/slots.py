"""Env slots for the evaluator: a fixed set of envs that run seeded episodes with continuous refill,
in this process or spread over worker processes that exchange observations and actions through
shared memory.

Slots are numbered 0 .. n_envs-1; ``obs[key]`` is (n_envs, ...) with row j = slot j's latest
observation (a slot with no episode left keeps its last one). Worker w owns a contiguous block of
slots and its envs. When a slot's episode ends (success with ``stop_on_success``, termination or
the time limit), the slot claims the next pending episode index from a shared counter and resets:
at once, or (``refill=False`` on a step) at the next step the caller allows refills, which lets a
chunk policy keep all its rows re-planning on the same steps. Which slot runs which episode depends
on timing; what an episode does depends only on its seed and on the actions it is given.

One evaluator step: the caller writes actions (n_envs, Da) (rows of idle slots are ignored), every
worker with a running episode (or, on a refill step, with an idle slot) steps its envs and replies
with its events:
``("start", slot, episode)`` and ``("end", slot, episode, success, return, length, video_path)``,
an ``end`` always before the ``start`` that refills the same slot. Workers run under ``forkserver``;
the shared arrays are created and unlinked by the caller.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
import traceback
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["SlotPool"]

logger = logging.getLogger(__name__)


class SlotPool:
    """``n_envs`` env slots over ``workers`` processes (0: every env in this process).

    Args:
        env_id, env_kwargs: what every slot's env is (``ttfkit.envs.make_env(env_id, **env_kwargs)``).
        n_envs: slots. workers: processes (0 or more; at most n_envs), slots split into near-equal blocks.
        seeds: episode i is reset with ``seeds[i]``.
        limit: steps per episode at most. stop_on_success: end an episode at its first success.
        video_dir, n_videos: record episodes 0 .. n_videos-1 as mp4 in video_dir (None: no videos).

    Attributes after ``start()``: ``obs`` {key: (n_envs, ...)}, ``action_shape`` (Da,), and
    ``timings`` {"sim_s": per-worker env time (list), "wait_s": time spent in ``step``}.
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], n_envs: int, workers: int, seeds: list[int],
                 limit: int, stop_on_success: bool, video_dir: str | None = None, n_videos: int = 0) -> None:
        if n_envs < 1 or not 0 <= workers <= n_envs:
            raise ValueError(f"need n_envs >= 1 and 0 <= workers <= n_envs, got {n_envs=}, {workers=}")
        self.n_envs, self.workers = n_envs, workers
        self._run = dict(env_id=env_id, env_kwargs=dict(env_kwargs), seeds=list(seeds), limit=limit,
                         stop_on_success=stop_on_success, video_dir=video_dir, n_videos=n_videos)
        self.obs: dict[str, np.ndarray] = {}
        self.action_shape: tuple[int, ...] = ()
        self.timings: dict[str, Any] = {"sim_s": [], "wait_s": 0.0}
        self._blocks = _split(n_envs, max(workers, 1))
        self._procs: list = []
        self._conns: list = []
        self._shms: list[shared_memory.SharedMemory] = []
        self._local: _SlotRunner | None = None
        self._actions: np.ndarray | None = None

    def __enter__(self) -> "SlotPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> list[tuple]:
        """Build the envs and start the first episodes; returns their ``start`` events."""
        if self.workers == 0:
            from ttfkit.envs.registry import make_env

            envs = [make_env(self._run["env_id"], **self._run["env_kwargs"]) for _ in range(self.n_envs)]
            spaces = _spaces(envs[0])
            self.obs = {k: np.zeros(shape, dtype) for k, (shape, dtype) in _stacked(spaces, self.n_envs).items()}
            self.action_shape = spaces[1]
            counter = _Counter()
            self._local = _SlotRunner(envs, 0, self.obs, counter.claim, **self._run)
            return self._local.start()
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["ttfkit.envs"])  # the server imports MuJoCo and the suites once
        counter = ctx.Value("q", 0)
        for first, count in self._blocks:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child, first, count, counter, self._run), daemon=True)
            proc.start()
            child.close()
            self._procs.append(proc)
            self._conns.append(parent)
        replies = [self._recv(w) for w in range(self.workers)]
        obs_spaces, self.action_shape = replies[0]
        layout = {**_stacked((obs_spaces, self.action_shape), self.n_envs),
                  "__action__": ((self.n_envs, *self.action_shape), np.dtype(np.float32).str)}
        names = {}
        for key, (shape, dtype) in layout.items():
            nbytes = max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize)
            shm = shared_memory.SharedMemory(create=True, size=nbytes)
            self._shms.append(shm)
            names[key] = (shm.name, shape, dtype)
            view = np.ndarray(shape, dtype, buffer=shm.buf)
            if key == "__action__":
                self._actions = view
            else:
                self.obs[key] = view
        for conn in self._conns:
            conn.send(names)
        return [e for w in range(self.workers) for e in self._recv(w)]

    def step(self, actions: np.ndarray, active: np.ndarray, refill: bool = True) -> list[tuple]:
        """Apply ``actions`` (n_envs, Da) to the slots with a running episode (``active`` (n_envs,) bool);
        with ``refill``, every idle slot then starts the next pending episode, if any."""
        start = time.perf_counter()
        if self._local is not None:
            events = self._local.step(actions, refill)
        else:
            self._actions[:] = actions
            busy = [w for w, (first, count) in enumerate(self._blocks)
                    if active[first:first + count].any() or (refill and not active[first:first + count].all())]
            for w in busy:
                self._conns[w].send_bytes(b"step+refill" if refill else b"step")
            events = [e for w in busy for e in self._recv(w)]
        self.timings["wait_s"] += time.perf_counter() - start
        return events

    def refill(self) -> list[tuple]:
        """Start pending episodes in every idle slot (no env steps)."""
        if self._local is not None:
            return self._local.step(None, True)
        for conn in self._conns:
            conn.send_bytes(b"refill")
        return [e for w in range(self.workers) for e in self._recv(w)]

    def close(self) -> None:
        """Stop the workers, close the envs and free the shared memory (idempotent)."""
        if self._local is not None:
            self.timings["sim_s"] = [self._local.sim_s]
            self._local.close()
            self._local = None
        for w, (conn, proc) in enumerate(zip(self._conns, self._procs)):
            try:
                conn.send_bytes(b"close")
                if conn.poll(30):
                    reply = conn.recv()
                    if reply[0] == "closed":
                        self.timings["sim_s"].append(reply[1])
            except (OSError, EOFError):
                pass
            conn.close()
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
        self._conns, self._procs = [], []
        self.obs, self._actions = {}, None
        for shm in self._shms:
            shm.close()
            shm.unlink()
        self._shms = []

    def _recv(self, w: int):
        first, count = self._blocks[w]
        try:
            kind, payload = self._conns[w].recv()
        except (EOFError, OSError) as err:
            raise RuntimeError(f"evaluation worker {w} (slots {first}..{first + count - 1}) died "
                               f"(exit code {self._procs[w].exitcode})") from err
        if kind == "error":
            raise RuntimeError(f"evaluation worker {w} (slots {first}..{first + count - 1}) failed:\n{payload}")
        return payload


class _SlotRunner:
    """Envs ``first .. first+len(envs)-1`` of one process: claims episodes, steps, keeps per-episode sums."""

    def __init__(self, envs: list, first: int, obs: dict[str, np.ndarray], claim: Callable[[], int],
                 env_id: str, env_kwargs: dict, seeds: list[int], limit: int, stop_on_success: bool,
                 video_dir: str | None, n_videos: int) -> None:
        self.envs, self.first, self.claim = envs, first, claim
        self.obs = obs  # {key: (n_envs, ...)}; this runner writes rows first .. first+len(envs)-1
        self.env_id, self.seeds, self.limit, self.stop_on_success = env_id, seeds, limit, stop_on_success
        self.video_dir, self.n_videos = video_dir, n_videos
        n = len(envs)
        self.episode = [-1] * n
        self.ret, self.length, self.success = [0.0] * n, [0] * n, [False] * n
        self.frames: list[list | None] = [None] * n
        self.exhausted = False  # the counter ran past the last episode
        self.sim_s = 0.0

    def start(self) -> list[tuple]:
        events: list[tuple] = []
        for i in range(len(self.envs)):
            self._next(i, events)
        return events

    def step(self, actions: np.ndarray | None, refill: bool) -> list[tuple]:
        """Step the running episodes (none when ``actions`` is None); with ``refill`` start pending
        episodes in the idle slots."""
        events: list[tuple] = []
        for i, env in enumerate(self.envs):
            if self.episode[i] < 0 or actions is None:
                continue
            start = time.perf_counter()
            obs, reward, terminated, truncated, info = env.step(np.array(actions[self.first + i], dtype=np.float32))
            frame = env.render() if self.frames[i] is not None else None
            self.sim_s += time.perf_counter() - start
            self._write(i, obs)
            if frame is not None:
                self.frames[i].append(np.asarray(frame))
            self.ret[i] += float(reward)
            self.length[i] += 1
            hit = bool(info.get("is_success", False))
            self.success[i] |= hit
            if terminated or truncated or self.length[i] >= self.limit or (self.stop_on_success and hit):
                events.append(("end", self.first + i, self.episode[i], self.success[i], self.ret[i],
                               self.length[i], self._video(i)))
                self.episode[i] = -1
        if refill and not self.exhausted:
            for i in range(len(self.envs)):
                if self.episode[i] < 0:
                    self._next(i, events)
        return events

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def _next(self, i: int, events: list[tuple]) -> None:
        ep = self.claim()
        if ep >= len(self.seeds):
            self.episode[i], self.exhausted = -1, True
            return
        self.episode[i], self.ret[i], self.length[i], self.success[i] = ep, 0.0, 0, False
        start = time.perf_counter()
        obs, _ = self.envs[i].reset(seed=self.seeds[ep])
        record = self.video_dir is not None and ep < self.n_videos
        self.frames[i] = [np.asarray(self.envs[i].render())] if record else None
        self.sim_s += time.perf_counter() - start
        self._write(i, obs)
        events.append(("start", self.first + i, ep))

    def _write(self, i: int, obs: dict[str, np.ndarray]) -> None:
        for key, rows in self.obs.items():
            rows[self.first + i] = obs[key]

    def _video(self, i: int) -> str | None:
        frames, self.frames[i] = self.frames[i], None
        if frames is None:
            return None
        import imageio.v2 as imageio

        ep, ok = self.episode[i], self.success[i]
        video_dir = Path(self.video_dir)
        video_dir.mkdir(parents=True, exist_ok=True)
        task = self.env_id.split("/", 1)[1]
        path = video_dir / f"{task}_ep{ep:03d}_seed{self.seeds[ep]}_{'success' if ok else 'failure'}.mp4"
        fps = int(self.envs[i].metadata.get("render_fps", 30))
        imageio.mimsave(path, frames, fps=fps, macro_block_size=1)
        return str(path)


class _Counter:
    """In-process episode counter (the worker pool shares an ``mp.Value`` instead)."""

    def __init__(self) -> None:
        self.value = 0

    def claim(self) -> int:
        self.value += 1
        return self.value - 1


def _worker_main(conn, first: int, count: int, counter, run: dict) -> None:
    """Worker process: build ``count`` envs for slots ``first ..``, then serve step requests."""
    shms: list[shared_memory.SharedMemory] = []
    runner, views = None, {}
    try:
        from ttfkit.envs.registry import make_env

        envs = [make_env(run["env_id"], **run["env_kwargs"]) for _ in range(count)]
        conn.send(("ok", _spaces(envs[0])))
        names = conn.recv()
        views = {}
        for key, (name, shape, dtype) in names.items():
            shm = shared_memory.SharedMemory(name=name)
            shms.append(shm)
            views[key] = np.ndarray(shape, dtype, buffer=shm.buf)
        actions = views.pop("__action__")

        def claim() -> int:
            with counter.get_lock():
                counter.value += 1
                return counter.value - 1

        runner = _SlotRunner(envs, first, views, claim, **run)
        conn.send(("ok", runner.start()))
        while True:
            cmd = conn.recv_bytes()
            if cmd == b"close":
                break
            conn.send(("ok", runner.step(None if cmd == b"refill" else actions, cmd != b"step")))
        conn.send(("closed", runner.sim_s))
    except (EOFError, KeyboardInterrupt):
        pass
    except BaseException:
        try:
            conn.send(("error", traceback.format_exc()))
        except OSError:
            pass
    finally:
        if runner is not None:
            runner.close()
        runner = views = actions = None  # drop the views before closing the shared memory
        for shm in shms:
            try:
                shm.close()
            except BufferError:  # a view survived; the mapping goes with the process
                pass
        conn.close()


def _spaces(env) -> tuple[dict[str, tuple[tuple[int, ...], str]], tuple[int, ...]]:
    """({key: (shape, dtype str)} of one observation, action shape)."""
    obs = {k: (tuple(s.shape), np.dtype(s.dtype).str) for k, s in env.observation_space.spaces.items()}
    return obs, tuple(env.action_space.shape)


def _stacked(spaces, n: int) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: ((n, *shape), dtype) for k, (shape, dtype) in spaces[0].items()}


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    """n slots into ``parts`` contiguous (first, count) blocks whose sizes differ by at most one."""
    base, extra = divmod(n, parts)
    blocks, first = [], 0
    for p in range(parts):
        count = base + (p < extra)
        blocks.append((first, count))
        first += count
    return blocks
