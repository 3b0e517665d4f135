"""Where `ttf gap` runs its work: in this process (default) or on a Ray cluster (``--executor ray``).

The Ray executor runs each training run as one Ray task (``num_cpus`` = ``--threads``, ``num_gpus`` = 1
when the study trains on CUDA) and, once a run is trained, splits each checkpoint's missing
evaluation episodes into seed-range shards of ``shard_episodes`` episodes, one Ray task each
(``num_cpus`` = 1, envs in the task's process). A shard's result is written to
``<checkpoint>/eval_shards/<first>-<last>.json`` as soon as it arrives; when every shard of a
checkpoint is there, they are merged in seed order onto ``eval.json`` (what the in-process executor
writes). Episode i always has seed 100000 + i and per-episode noise (``ttfkit.envs.evaluate``), so
the merged result equals a one-process evaluation exactly. Everything lives in the study directory,
which on a cluster must be a filesystem every node sees at the same path. Resuming is as in-process:
finished runs are skipped by the trainer, evaluated shards by their files. A task that raises is
retried ``retries`` times; then the study stops with an error naming the run and the shard, and
every file already written stays.

    ray start --head --port 6379                    # head node
    ray start --address HEAD:6379                   # each worker node
    ttf gap --preset full --executor ray --ray-address HEAD:6379 --out /shared/full
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RayExecutor", "shard_ranges", "evaluate_shard", "merge_shards"]

logger = logging.getLogger(__name__)


def shard_ranges(have: int, total: int, size: int) -> list[tuple[int, int]]:
    """Episode ranges [first, end) covering have .. total-1 in pieces of at most ``size``."""
    if size < 1:
        raise ValueError(f"shard size must be >= 1, got {size}")
    return [(a, min(total, a + size)) for a in range(have, total, size)]


def _shard_path(ckpt: Path, first: int, end: int) -> Path:
    return ckpt / "eval_shards" / f"{first:06d}-{end - 1:06d}.json"


def evaluate_shard(ckpt: str, env: str, first: int, end: int, max_steps: int | None, device: str,
                   threads: int) -> str:
    """Evaluate episodes first .. end-1 of ``ckpt`` (seeds 100000 + i) and write the shard file; returns its path."""
    import torch

    from ttfkit.envs import evaluate
    from ttfkit.envs.evaluate import DEFAULT_EVAL_SEED
    from ttfkit.policies import load
    from ttfkit.scripts.device import resolve_device

    torch.set_num_threads(threads)
    path = _shard_path(Path(ckpt), first, end)
    if path.exists():
        return str(path)
    policy = load(ckpt, device=resolve_device(device))
    result = evaluate(policy, env, end - first, seed=DEFAULT_EVAL_SEED + first, max_steps=max_steps, workers=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, result.to_json())
    return str(path)


def merge_shards(ckpt: Path, ranges: list[tuple[int, int]]):
    """``eval.json`` (if any) followed by the shards' episodes in seed order, written back atomically."""
    from ttfkit.envs import EvalResult

    path = ckpt / "eval.json"
    merged = EvalResult.from_json(path.read_text()) if path.exists() else None
    for first, end in ranges:
        part = EvalResult.from_json(_shard_path(ckpt, first, end).read_text())
        have = merged.n_episodes if merged is not None else 0
        if have != first:
            raise ValueError(f"{ckpt}: shard {first}-{end - 1} does not follow the {have} episodes merged so far")
        merged = part if merged is None else merged.extended(part)
    _write_atomic(path, merged.to_json())
    return merged


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class RayExecutor:
    """Trains and evaluates a study's runs as Ray tasks (see the module docstring).

    Args:
        address: Ray cluster address (``HOST:PORT``); None connects to a running local instance or
            starts one.
        threads: torch threads (and ``num_cpus``) of each training task.
        shard_episodes: evaluation episodes per shard task.
        retries: extra tries of a failed task.
    """

    address: str | None = None
    threads: int = 1
    shard_episodes: int = 10
    retries: int = 1

    def run(self, cfg, dataset: str, runs: list[tuple[str, float, int, Path]]) -> None:
        """Train every run and bring every checkpoint's ``eval.json`` to ``cfg.eval_episodes`` episodes."""
        try:
            import ray
        except ImportError as err:
            raise ImportError("ttf gap --executor ray needs Ray: pip install 'ttfkit[ray]' (ray==2.60.0)") from err

        from ttfkit.scripts.device import resolve_device

        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        gpus = 1 if resolve_device(cfg.device) == "cuda" else 0
        train = ray.remote(_train_task).options(num_cpus=self.threads, num_gpus=gpus, max_retries=self.retries,
                                                retry_exceptions=True)
        shard = ray.remote(evaluate_shard).options(num_cpus=1, max_retries=self.retries, retry_exceptions=True)
        pending = {train.remote(cfg, dataset, str(d), opt, lr, seed, self.threads): ("train", d, None)
                   for opt, lr, seed, d in runs}
        todo: dict[Path, list[tuple[int, int]]] = {}  # checkpoint -> its shard ranges
        left: dict[Path, int] = {}  # checkpoint -> shards not finished yet
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            kind, run_dir, item = pending.pop(done[0])
            try:
                ray.get(done[0])
            except Exception as err:  # noqa: BLE001 - re-raised with the run and shard named
                what = f"training of {run_dir}" if kind == "train" else f"evaluation shard episodes " \
                       f"{item[1]}-{item[2] - 1} of {item[0]}"
                raise RuntimeError(f"ttf gap --executor ray: {what} failed after {1 + self.retries} tries; files "
                                   f"already written are kept, rerun to resume: {err}") from err
            if kind == "train":
                for ckpt in sorted((run_dir / "checkpoints").glob("step_*")):
                    ranges = self._missing(cfg, ckpt)
                    if ranges:
                        todo[ckpt], left[ckpt] = ranges, len(ranges)
                    for first, end in ranges:
                        ref = shard.remote(str(ckpt), cfg.env, first, end, cfg.eval_max_steps, cfg.device, 1)
                        pending[ref] = ("shard", run_dir, (ckpt, first, end))
            else:
                ckpt = item[0]
                left[ckpt] -= 1
                if left[ckpt] == 0:
                    merge_shards(ckpt, todo.pop(ckpt))
                    logger.info("evaluated %s", ckpt)

    def _missing(self, cfg, ckpt: Path) -> list[tuple[int, int]]:
        from ttfkit.envs import EvalResult

        path = ckpt / "eval.json"
        have = EvalResult.from_json(path.read_text()).n_episodes if path.exists() else 0
        return shard_ranges(have, cfg.eval_episodes, self.shard_episodes)


def _train_task(cfg, dataset: str, run_dir: str, opt: str, lr: float, seed: int, threads: int) -> str:
    """One training run in a Ray worker (resumes a partial run like the in-process executor)."""
    import torch

    from ttfkit.scripts.gap import _train_run

    torch.set_num_threads(threads)
    _train_run(cfg, dataset, Path(run_dir), opt, lr, seed, f"{opt} lr={lr:g} seed={seed}")
    return run_dir
