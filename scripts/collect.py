"""Roll a scripted expert into a zarr dataset (Diffusion Policy layout).

Example:
    ttf collect --env ttfkit/metaworld-pick-place-v3 --episodes 100 --out demos/pick-place.zarr \\
        --workers 2 --noise 0.1

Episode i uses reset seed ``seed * 1_000_000 + i``; the store is the same for any --workers.
Only successful episodes are kept unless --keep says otherwise. Ctrl-C keeps every finished
episode; rerunning the same command resumes (only missing episodes are collected).
"""

from __future__ import annotations

import argparse
import logging
import sys

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="env id, e.g. ttfkit/metaworld-reach-v3")
    parser.add_argument("--episodes", type=int, required=True, help="episodes to attempt (kept or not)")
    parser.add_argument("--out", required=True, help="zarr store path (PATH.zarr); resumed if present")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="std of Gaussian noise on executed actions; labels stay clean (DART)")
    parser.add_argument("--pixels", action="store_true", help="also record 96x96 RGB `pixels`")
    parser.add_argument("--image-size", type=int, default=None, help="pixels side (default 96)")
    parser.add_argument("--camera", default=None, help="camera for --pixels (suite default if unset)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    parser.add_argument("--keep", choices=("successes", "failures", "all"), default="successes")
    parser.add_argument("--max-steps", type=int, default=None, help="episode limit (suite default)")


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import ttfkit.envs  # noqa: F401  (registers ids)
    from ttfkit.envs.collect import collect

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    env_kwargs = {}
    if args.image_size is not None:
        env_kwargs["image_size"] = args.image_size
    if args.camera is not None:
        env_kwargs["camera"] = args.camera
    counts = {"kept": 0, "failed": 0}
    bar = tqdm(total=args.episodes, desc=args.env.split("/")[-1], unit="ep", dynamic_ncols=True)

    def on_episode(_: int, success: bool, kept: bool) -> None:
        counts["kept"] += kept
        counts["failed"] += not success
        bar.set_postfix(kept=counts["kept"], failed=counts["failed"])
        bar.update(1)

    try:
        report = collect(args.env, args.episodes, args.out, seed=args.seed, workers=args.workers,
                         noise=args.noise, pixels=args.pixels, keep=args.keep, max_steps=args.max_steps,
                         env_kwargs=env_kwargs, on_episode=on_episode)
    except KeyboardInterrupt:
        bar.close()
        print(f"\ninterrupted: {counts['kept']} episodes kept this run are saved in {args.out}; "
              "rerun the same command to resume", file=sys.stderr)
        return 130
    except (ValueError, KeyError) as err:
        bar.close()
        print(f"ttf collect: {err}", file=sys.stderr)
        return 2
    bar.close()
    print(f"{args.out}: {report.attempted} attempted ({report.new_attempted} this run), "
          f"{report.kept} kept, {report.failed} failed, {report.n_steps} steps")
    return 0
