"""Roll a scripted expert into a zarr dataset (Diffusion Policy layout).

Example:
    ttf collect --env ttfkit/metaworld-pick-place-v3 --episodes 100 --out demos/pick-place.zarr \\
        --workers 2 --noise 0.1
    ttf collect --env ttfkit/metaworld-reach-v3 --episodes 50 --out demos/reach_px.zarr \\
        --pixels --image-size 84 --camera corner gripperPOV --no-environment-state

With --pixels, one --camera is stored as ``pixels``; several are stored as one ``pixels_<camera>``
key each (exported to LeRobot as ``observation.images.pixels_<camera>``). Camera names: Meta-World
``corner``, ``corner2``, ``corner3``, ``corner4``, ``topview``, ``behindGripper``, ``gripperPOV``;
Fetch ``head_camera_rgb``, ``gripper_camera_rgb``, ``external_camera_0`` (default: a free camera).

Episode i uses reset seed ``seed * 1_000_000 + i``; the store is the same for any --workers.
Only successful episodes are kept unless --keep says otherwise. Ctrl-C keeps every finished
episode; rerunning the same command resumes (only missing episodes are collected).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

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
    parser.add_argument("--camera", nargs="+", default=None, metavar="NAME",
                        help="camera(s) for --pixels (suite default if unset); several (or commas) give "
                             "one pixels_<NAME> key each")
    parser.add_argument("--no-environment-state", action="store_true",
                        help="do not store environment_state (object poses): the pixel setting")
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
    cameras = [c for arg in args.camera or [] for c in arg.split(",") if c]
    pixels = args.pixels
    if cameras and not pixels:
        print("ttf collect: error: --camera needs --pixels", file=sys.stderr)
        return 2
    if len(cameras) == 1:
        env_kwargs["camera"] = cameras[0]
    elif cameras:
        env_kwargs["cameras"] = cameras
        pixels = False  # no extra `pixels` key from the suite's default camera
    counts = {"kept": 0, "failed": 0}
    bar = tqdm(total=args.episodes, desc=args.env.split("/")[-1], unit="ep", dynamic_ncols=True)

    def on_episode(_: int, success: bool, kept: bool) -> None:
        counts["kept"] += kept
        counts["failed"] += not success
        bar.set_postfix(kept=counts["kept"], failed=counts["failed"])
        bar.update(1)

    n_cameras = len(cameras) or 1 if args.pixels else 0
    before = _stored_steps(args.out)
    start = time.perf_counter()
    try:
        report = collect(args.env, args.episodes, args.out, seed=args.seed, workers=args.workers,
                         noise=args.noise, pixels=pixels, keep=args.keep, max_steps=args.max_steps,
                         env_kwargs=env_kwargs, environment_state=not args.no_environment_state,
                         on_episode=on_episode)
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
    elapsed = time.perf_counter() - start
    rate = (report.n_steps - before) / max(elapsed, 1e-9)
    frames = f", {rate * n_cameras:.0f} frames/s over {n_cameras} camera(s)" if n_cameras else ""
    print(f"{args.out}: {report.attempted} attempted ({report.new_attempted} this run), "
          f"{report.kept} kept, {report.failed} failed, {report.n_steps} steps; "
          f"{rate:.0f} stored steps/s{frames} ({elapsed:.1f} s)")
    return 0


def _stored_steps(path: str) -> int:
    if not os.path.exists(path):
        return 0
    from ttfkit.data.replay_buffer import ReplayBuffer

    try:
        return ReplayBuffer.open(path, mode="r").n_steps
    except (ValueError, KeyError):
        return 0  # not a store: collect reports the error
