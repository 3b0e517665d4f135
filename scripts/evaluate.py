"""Evaluate a policy checkpoint or a scripted expert in closed loop.

Example:
    ttf eval --checkpoint runs/flow/checkpoints/step_001000 --env ttfkit/metaworld-pick-place-v3 --episodes 50 \\
        --n-envs 8 --workers 2 --video videos/ --out eval.json
    ttf eval --expert --env ttfkit/fetch-push-v4 --episodes 50
    ttf eval --checkpoint runs/lift/checkpoints/step_003000   # no --env: the env its training store names

A checkpoint that reads images gets them rendered at its own image size, from the camera its training
store recorded (--image-size/--camera override). Episode i is reset with seed --episode-seed + i (default 100000); an episode succeeds if the env reports
success at any step and ends there (see ttfkit.envs.evaluate). Each episode's noise is seeded by its
seed, so per-episode results do not depend on --n-envs or --workers. Prints a summary table and writes
the per-episode results as JSON (--out; default <checkpoint>/eval_<task>.json).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ttfkit.scripts.device import add_device_argument, resolve_device
from ttfkit.scripts.image_options import add_image_arguments, image_options, training_dataset
from ttfkit.scripts.options import csv_of, deprecated_alias

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    checkpoint = which.add_argument("--checkpoint", metavar="PATH", help="checkpoint directory (ttfkit.policies.load)")
    which.add_argument("--expert", action="store_true", help="evaluate the env's scripted expert instead")
    deprecated_alias(which, "--policy", checkpoint, apply=_old_policy_flag)
    parser.add_argument("--env", default=None,
                        help="env id, e.g. ttfkit/metaworld-reach-v3 (default: the env --dataset names)")
    parser.add_argument("--dataset", default=None,
                        help="a store from `ttf collect` or `ttf data import-robomimic`: evaluate in the env it names "
                             "(default when --env is not given: the checkpoint's training dataset)")
    parser.add_argument("--episodes", type=int, default=50, help="episodes")
    seed = parser.add_argument("--episode-seed", type=int, default=100_000, help="first episode seed")
    deprecated_alias(parser, "--seed", seed)
    parser.add_argument("--n-envs", type=int, default=None,
                        help="env slots = the policy's batch (default 8, the same on every machine; "
                             "per-episode results do not depend on it)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes running the envs (default: one per core up to --n-envs; 0: in-process)")
    parser.add_argument("--video", default=None, metavar="DIR", help="write mp4s of the first episodes here")
    parser.add_argument("--n-videos", type=int, default=4, help="episodes to film with --video")
    parser.add_argument("--max-steps", type=int, default=None, help="episode limit (default: the suite's)")
    parser.add_argument("--n-action-steps", type=int, default=None, metavar="N",
                        help="actions executed per chunk before re-planning (default: the checkpoint's)")
    parser.add_argument("--no-stop-on-success", action="store_true",
                        help="run every episode to the time limit instead of ending at success")
    parser.add_argument("--pixels", action="store_true",
                        help="give the policy `pixels` observations (implied for a checkpoint that reads images)")
    add_image_arguments(parser)
    add_device_argument(parser, what="the policy (the envs always run on CPU cores)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="JSON file for the result")
    parser.add_argument("--log", type=csv_of(str), default=(), metavar="tensorboard[,wandb]",
                        help="also log eval/success etc. at the checkpoint's training step, one point per call, "
                             "under its run directory (RUN_DIR/tensorboard/eval-TASK/, RUN_DIR/wandb/)")


def _old_policy_flag(namespace: argparse.Namespace, value: str) -> None:
    """``--policy expert`` meant ``--expert``; ``--policy PATH`` meant ``--checkpoint PATH``."""
    if value == "expert":
        namespace.expert = True
    else:
        namespace.checkpoint = value


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import ttfkit.envs
    from ttfkit.envs.evaluate import evaluate

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.checkpoint is None and not args.expert:
        raise ValueError("give --checkpoint PATH or --expert")
    if args.expert and args.n_action_steps is not None:
        raise ValueError("--n-action-steps applies to a --checkpoint policy, not to --expert")
    if args.log and args.checkpoint is None:
        raise ValueError("--log needs --checkpoint (results are logged at its training step, beside its run)")
    from ttfkit.policies.loggers import check_logger_names

    check_logger_names(args.log)  # before the rollouts
    env_kwargs: dict = {}  # bad input raises: cli prints `ttf eval: error: ...` and returns 2
    if args.env is None and args.expert:
        args.env, env_kwargs = _env_from_dataset(args, ())
    if args.expert:
        policy = ttfkit.envs.make_expert(args.env)
        name = f"expert:{policy.name}"
    else:
        import torch

        from ttfkit.policies import load

        torch.set_num_threads(args.threads)
        policy = load(args.checkpoint, device=resolve_device(args.device))
        if args.n_action_steps is not None:
            policy.set_action_steps(args.n_action_steps)
        name = str(args.checkpoint)
        if args.env is None:
            args.env, env_kwargs = _env_from_dataset(args, tuple(policy.config.obs_shapes))
    env_kwargs.update(image_options({} if args.expert else policy.config.obs_shapes, image_size=args.image_size,
                                    camera=args.camera, pixels=args.pixels, checkpoint=args.checkpoint,
                                    dataset=args.dataset))
    bar = tqdm(total=args.episodes, desc=args.env.split("/")[-1], unit="ep", dynamic_ncols=True)
    wins = [0]

    def on_episode(_: int, success: bool) -> None:
        wins[0] += success
        bar.set_postfix(success=wins[0])
        bar.update(1)

    try:
        result = evaluate(policy, args.env, args.episodes, seed=args.episode_seed, n_envs=args.n_envs,
                          video_dir=args.video, n_videos=args.n_videos, max_steps=args.max_steps,
                          stop_on_success=not args.no_stop_on_success, env_kwargs=env_kwargs,
                          policy_name=name, on_episode=on_episode, workers=args.workers)
    finally:
        bar.close()
    print(result.table())
    print(f"  {'seed':>8} {'success':>8} {'return':>10} {'length':>7}")
    for s, ok, ret, length in zip(result.seeds, result.successes, result.returns, result.lengths):
        print(f"  {s:>8} {str(ok):>8} {ret:>10.2f} {length:>7}")
    out = args.out
    if out is None and not args.expert:
        suffix = "" if args.n_action_steps is None else f"_ta{args.n_action_steps}"
        out = Path(args.checkpoint) / f"eval_{args.env.split('/')[-1]}{suffix}.json"
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(result.to_json())
        tmp.replace(out)
        print(f"wrote {out}")
    for video in result.videos:
        print(f"video {video}")
    if args.log:
        _log_result(args.log, Path(args.checkpoint), args.env, result)
    return 0


def _log_result(names: tuple[str, ...], ckpt: Path, env_id: str, result) -> None:
    """``result`` at the checkpoint's training step into loggers under its run directory (RUN_DIR for
    RUN_DIR/checkpoints/step_N, else the checkpoint directory), writer kind ``eval-<task>``."""
    from ttfkit.policies.checkpoint import read_config
    from ttfkit.policies.loggers import eval_metrics, open_loggers

    step = int(read_config(ckpt).get("metadata", {}).get("step") or 0)
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt
    task = env_id.split("/")[-1]
    with open_loggers(names, run, kind=f"eval-{task}", name=run.name,
                      config={"env": env_id, "checkpoint": ckpt.name, "episodes": result.n_episodes}) as log:
        log.log(eval_metrics(result), step)
    print(f"logged eval/success {result.success_rate:.3f} at step {step} ({', '.join(names)}) under {run}")


def _env_from_dataset(args: argparse.Namespace, obs_keys: tuple[str, ...]) -> tuple[str, dict]:
    """(env id, env kwargs) of the env the store names (``ttfkit.envs.from_store``, as ``ttf gap``): --dataset,
    else the checkpoint's training dataset. One env is built here, so a dataset/env observation-key mismatch
    fails before any rollout."""
    from ttfkit.envs import make_env
    from ttfkit.envs.from_store import env_for_store

    dataset = args.dataset
    if dataset is None and not args.expert:
        dataset = training_dataset(args.checkpoint)
    if dataset is None:
        raise ValueError("--env is required unless --dataset (or the checkpoint's training dataset) is a "
                         "store that names its env (`ttf collect` or `ttf data import-robomimic`)")
    env_id, kwargs = env_for_store(dataset, obs_keys)
    make_env(env_id, **kwargs).close()
    print(f"env {env_id} from {dataset}: {kwargs}")
    return env_id, kwargs
