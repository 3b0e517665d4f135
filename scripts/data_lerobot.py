"""`ttf data export-lerobot` / `ttf data import-lerobot`: zarr store <-> LeRobotDataset v3.0.

    ttf data export-lerobot demos.zarr demos_lerobot --fps 20 --task "pick the cube"
    ttf data import-lerobot demos_lerobot demos_back.zarr

Needs LeRobot 0.4.4 (`make lerobot`). Key mapping and exactness: see ttfkit.data.lerobot.
"""

from __future__ import annotations

import argparse
import os

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    if parser.get_default("data_command") == "import-lerobot":
        parser.add_argument("in_dir", help="LeRobotDataset root (with meta/info.json)")
        parser.add_argument("out_zarr", help="zarr store to create")
    else:
        parser.add_argument("in_zarr", help="ttfkit / Diffusion Policy zarr store")
        parser.add_argument("out_dir", help="LeRobotDataset root to create")
        parser.add_argument("--fps", type=int, required=True, help="recording frame rate")
        parser.add_argument("--task", default=None,
                            help="task text for every frame (default: the store's task/env_id attr)")
        parser.add_argument("--video", action="store_true",
                            help="store image keys as video (lossy) instead of PNG frames (exact)")
        parser.add_argument("--repo-id", default=None, help="dataset name (default local/<out_dir>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local conversion: never ask the Hub
    from tqdm import tqdm

    from ttfkit.data.lerobot import export_lerobot, import_lerobot

    bar = tqdm(desc=args.data_command, unit="ep", dynamic_ncols=True, disable=args.no_progress)

    def on_episode(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        if args.data_command == "import-lerobot":
            buf = import_lerobot(args.in_dir, args.out_zarr, overwrite=args.overwrite, on_episode=on_episode)
        else:
            out = export_lerobot(args.in_zarr, args.out_dir, fps=args.fps, task=args.task, repo_id=args.repo_id,
                                 use_videos=args.video, overwrite=args.overwrite, on_episode=on_episode)
    finally:
        bar.close()
    if args.data_command == "import-lerobot":
        print(f"wrote {buf.path}: {buf.n_episodes} episodes, {buf.n_steps} steps, keys {buf.keys()}")
    else:
        print(f"wrote {out} (LeRobotDataset v3.0)")
    return 0
