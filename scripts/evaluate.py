"""Evaluate a policy checkpoint or a scripted expert in closed loop.

Example:
    ttf eval --policy runs/flow/ckpt_010 --env ttfkit/metaworld-pick-place-v3 --episodes 50 \\
        --n-envs 8 --workers 2 --video videos/ --out eval.json
    ttf eval --policy expert --env ttfkit/fetch-push-v4 --episodes 50

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
    parser.add_argument("--env", required=True, help="env id, e.g. ttfkit/metaworld-reach-v3")
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
    try:
        if args.policy == "expert":
            policy = ttfkit.envs.make_expert(args.env)
            name = f"expert:{policy.name}"
        else:
            import torch

            from ttfkit.policies import load

            torch.set_num_threads(1)
            policy = load(args.policy, device=resolve_device(args.device))
            name = str(args.policy)
    except (KeyError, ValueError, FileNotFoundError) as err:
        print(f"ttf eval: {err}", file=sys.stderr)
        return 2
    env_kwargs = {"pixels": True} if args.pixels else {}
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
