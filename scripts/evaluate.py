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
    parser.add_argument("--image-size", type=int, default=None,
                        help="side of the rendered images (default: the checkpoint's image size, else the env's)")
    parser.add_argument("--camera", nargs="+", default=None, metavar="NAME",
                        help="camera(s) of the images (default: the checkpoint's training store's, else the env's; "
                             "a policy reading pixels_<NAME> keys renders those cameras)")
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
    env_kwargs.update(_image_options(args, {} if args.expert else policy.config.obs_shapes))
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
        dataset = _training_dataset(args.checkpoint)
    if dataset is None:
        raise ValueError("--env is required unless --dataset (or the checkpoint's training dataset) is a "
                         "store that names its env (`ttf collect` or `ttf data import-robomimic`)")
    env_id, kwargs = env_for_store(dataset, obs_keys)
    make_env(env_id, **kwargs).close()
    print(f"env {env_id} from {dataset}: {kwargs}")
    return env_id, kwargs


def _training_dataset(checkpoint) -> str | None:
    from ttfkit.policies.checkpoint import read_config

    return read_config(checkpoint).get("metadata", {}).get("train_config", {}).get("dataset")


def _image_options(args: argparse.Namespace, obs_shapes: dict) -> dict:
    """Env options that render what the policy reads: ``pixels`` (one camera) or ``cameras`` (a
    ``pixels_<camera>`` key each), the image side from the policy's (C, H, W) image shapes, the camera
    from --camera, else the training store's ``env_kwargs`` (``ttf collect`` records them), else the env's.
    A --image-size that contradicts the checkpoint is an error naming both."""
    image_keys = [k for k in obs_shapes if k == "pixels" or k.startswith("pixels_")]
    cameras = [c for arg in args.camera or [] for c in arg.split(",") if c]
    recorded = {}
    if image_keys and not cameras and getattr(args, "checkpoint", None):
        recorded = _recorded_env_kwargs(args.dataset or _training_dataset(args.checkpoint))
    options: dict = {}
    sides = {k: int(obs_shapes[k][-1]) for k in image_keys}
    if args.image_size is not None:
        wrong = {k: s for k, s in sides.items() if s != args.image_size}
        if wrong:
            raise ValueError(f"--image-size {args.image_size}: the checkpoint reads images of side {wrong}")
        options["image_size"] = args.image_size
    elif sides:
        options["image_size"] = next(iter(sides.values()))
    elif "image_size" in recorded:
        options["image_size"] = recorded["image_size"]
    named = sorted(k[len("pixels_"):] for k in image_keys if k.startswith("pixels_"))
    if named:
        if cameras and cameras != named:
            raise ValueError(f"--camera {' '.join(cameras)}: the checkpoint reads cameras {named}")
        options["cameras"] = named
    elif cameras:
        if len(cameras) > 1:
            raise ValueError(f"--camera {' '.join(cameras)}: a policy reading one `pixels` key takes one camera")
        options["camera"] = cameras[0]
    elif "camera" in recorded:
        options["camera"] = recorded["camera"]
    if not image_keys and not args.pixels:
        if options:
            raise ValueError("--image-size/--camera need --pixels or a checkpoint that reads images")
        return {}
    if "pixels" in image_keys or (args.pixels and not named):
        options["pixels"] = True
    return options


def _recorded_env_kwargs(dataset: str | None) -> dict:
    """The image options ``ttf collect`` recorded in the store's attrs ({} when unknown or unreadable)."""
    if dataset is None:
        return {}
    from ttfkit.data import ReplayBuffer

    try:
        kwargs = dict(ReplayBuffer.open(dataset, mode="r").attrs).get("env_kwargs") or {}
    except (OSError, ValueError, KeyError):
        return {}
    return {k: kwargs[k] for k in ("image_size", "camera") if k in kwargs}
