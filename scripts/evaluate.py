"""Evaluate a policy checkpoint or a scripted expert in closed loop.

Example:
    ttf eval --policy runs/flow/ckpt_010 --env ttfkit/metaworld-pick-place-v3 --episodes 50 \\
        --n-envs 8 --workers 2 --video videos/ --out eval.json
    ttf eval --policy expert --env ttfkit/fetch-push-v4 --episodes 50
    ttf eval --policy runs/lift/checkpoints/step_003000   # trained on a robomimic store: env from env_args

Episode i is reset with seed --seed + i (default 100000); an episode succeeds if the env reports
success at any step and ends there (see ttfkit.envs.evaluate). Each episode's noise is seeded by its
seed, so per-episode results do not depend on --n-envs or --workers. Prints a summary table and writes
the per-episode results as JSON (--out; default <policy>/eval_<task>.json for a checkpoint).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ttfkit.scripts.device import add_device_argument, resolve_device

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True,
                        help="checkpoint directory (ttfkit.policies.load) or 'expert' for the scripted expert")
    parser.add_argument("--env", default=None,
                        help="env id, e.g. ttfkit/metaworld-reach-v3 (default: from --dataset's robomimic env_args)")
    parser.add_argument("--dataset", default=None,
                        help="a store from `ttf data import-robomimic`: evaluate in the env its env_args describe "
                             "(default when --env is not given: the checkpoint's training dataset)")
    parser.add_argument("--episodes", type=int, default=50, help="episodes (default 50)")
    parser.add_argument("--seed", type=int, default=100_000, help="first episode seed (default 100000)")
    parser.add_argument("--n-envs", type=int, default=None,
                        help="env slots = the policy's batch (default 8, the same on every machine; "
                             "per-episode results do not depend on it)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes running the envs (default: one per core up to --n-envs; 0: in-process)")
    parser.add_argument("--video", default=None, metavar="DIR", help="write mp4s of the first episodes here")
    parser.add_argument("--n-videos", type=int, default=4, help="episodes to film with --video (default 4)")
    parser.add_argument("--max-steps", type=int, default=None, help="episode limit (suite default)")
    parser.add_argument("--no-stop-on-success", action="store_true",
                        help="run every episode to the time limit instead of ending at success")
    parser.add_argument("--pixels", action="store_true",
                        help="give the policy `pixels` observations (image policies)")
    add_device_argument(parser, what="the policy (the envs always run on CPU cores)")
    parser.add_argument("--out", default=None, help="JSON file for the result")


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import ttfkit.envs
    from ttfkit.envs.evaluate import evaluate

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    env_kwargs: dict = {}
    try:
        if args.env is None and args.policy == "expert":
            args.env, env_kwargs = _env_from_dataset(args, ())
        if args.policy == "expert":
            policy = ttfkit.envs.make_expert(args.env)
            name = f"expert:{policy.name}"
        else:
            import torch

            from ttfkit.policies import load

            torch.set_num_threads(1)
            policy = load(args.policy, device=resolve_device(args.device))
            name = str(args.policy)
            if args.env is None:
                args.env, env_kwargs = _env_from_dataset(args, tuple(policy.config.obs_shapes))
    except (KeyError, ValueError, FileNotFoundError) as err:
        print(f"ttf eval: {err}", file=sys.stderr)
        return 2
    if args.pixels:
        env_kwargs["pixels"] = True
    bar = tqdm(total=args.episodes, desc=args.env.split("/")[-1], unit="ep", dynamic_ncols=True)
    wins = [0]

    def on_episode(_: int, success: bool) -> None:
        wins[0] += success
        bar.set_postfix(success=wins[0])
        bar.update(1)

    try:
        result = evaluate(policy, args.env, args.episodes, seed=args.seed, n_envs=args.n_envs,
                          video_dir=args.video, n_videos=args.n_videos, max_steps=args.max_steps,
                          stop_on_success=not args.no_stop_on_success, env_kwargs=env_kwargs,
                          policy_name=name, on_episode=on_episode, workers=args.workers)
    except (KeyError, ValueError) as err:
        bar.close()
        print(f"ttf eval: {err}", file=sys.stderr)
        return 2
    bar.close()
    print(result.table())
    print(f"  {'seed':>8} {'success':>8} {'return':>10} {'length':>7}")
    for s, ok, ret, length in zip(result.seeds, result.successes, result.returns, result.lengths):
        print(f"  {s:>8} {str(ok):>8} {ret:>10.2f} {length:>7}")
    out = args.out
    if out is None and args.policy != "expert":
        out = Path(args.policy) / f"eval_{args.env.split('/')[-1]}.json"
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(result.to_json())
        tmp.replace(out)
        print(f"wrote {out}")
    for video in result.videos:
        print(f"video {video}")
    return 0


def _env_from_dataset(args: argparse.Namespace, obs_keys: tuple[str, ...]) -> tuple[str, dict]:
    """(env id, env kwargs) from a robomimic store's env_args: --dataset, else the checkpoint's training
    dataset. One env is built here, so a dataset/env observation-key mismatch fails before any rollout."""
    from ttfkit.envs import make_env
    from ttfkit.envs.robomimic import env_from_store

    dataset = args.dataset
    if dataset is None and args.policy != "expert":
        from ttfkit.policies.checkpoint import read_config

        dataset = read_config(args.policy).get("metadata", {}).get("train_config", {}).get("dataset")
    if dataset is None:
        raise ValueError("--env is required unless --dataset (or the checkpoint's training dataset) is a "
                         "store imported from robomimic")
    env_id, kwargs = env_from_store(dataset, obs_keys)
    make_env(env_id, **kwargs).close()
    print(f"env {env_id} from {dataset}'s env_args: {kwargs}")
    return env_id, kwargs
