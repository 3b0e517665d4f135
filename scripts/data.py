"""`ttf data <command>`: inspect, import and export datasets.

Commands come from the table ``COMMANDS`` (name -> (target, help)). A target is a module path
(``"ttfkit.scripts.data_lerobot"``) or ``"module:attr"`` naming an object in it; either way it
provides ``add_arguments(parser)`` and ``main(args) -> int``. The command's name is set as the
parser default ``data_command`` before ``add_arguments`` runs, so one module can serve several
commands (``parser.get_default("data_command")`` / ``args.data_command``). A target whose import
fails still shows in ``ttf data --help`` and reports the import error when run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from types import SimpleNamespace

import numpy as np

from ttfkit.scripts.options import HelpFormatter

__all__ = ["COMMANDS", "add_arguments", "main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("ttfkit.scripts.data:INFO", "episodes, steps, keys (shape/dtype/min/max) of a store"),
    "verify": ("ttfkit.scripts.data:VERIFY",
               "check a store: every chunk present and decodable, episode_ends sound (exit 1 if not)"),
    "import-robomimic": ("ttfkit.scripts.data:IMPORT_ROBOMIMIC",
                         "convert a robomimic HDF5 file to a zarr store"),
    "export-lerobot": ("ttfkit.scripts.data_lerobot", "write a zarr store as a LeRobotDataset v3.0"),
    "import-lerobot": ("ttfkit.scripts.data_lerobot", "convert a LeRobotDataset to a zarr store"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="<command>", required=True)
    for name, (target, text) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)
        p.set_defaults(data_command=name)
        try:
            command = _resolve(target)
        except ImportError as e:
            p.set_defaults(_data_main=_unavailable(name, target, e))
            continue
        command.add_arguments(p)
        p.set_defaults(_data_main=command.main)


def main(args: argparse.Namespace) -> int:
    return int(args._data_main(args) or 0)


def _resolve(target: str):
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    return getattr(obj, attr) if attr else obj


def _unavailable(name: str, target: str, error: ImportError):
    def run(args: argparse.Namespace) -> int:
        print(f"ttf data {name}: cannot import {target}: {error}", file=sys.stderr)
        return 1
    return run


# ---------------------------------------------------------------------- info
def _info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="zarr store (ttfkit or Diffusion Policy layout)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")


def _info_main(args: argparse.Namespace) -> int:
    from ttfkit.data import ReplayBuffer

    buf = ReplayBuffer.open(args.path, mode="r")
    lengths = buf.episode_lengths
    info = {
        "path": str(buf.path),
        "episodes": buf.n_episodes,
        "steps": buf.n_steps,
        "episode_length": ({"min": int(lengths.min()), "mean": float(lengths.mean()),
                            "max": int(lengths.max())} if lengths.size else None),
        "keys": {k: _key_info(buf[k], buf.n_steps) for k in buf.keys()},
        "attrs": dict(buf.attrs),
    }
    if args.json:
        print(json.dumps(info, default=str))
        return 0
    print(f"path: {info['path']}")
    print(f"episodes: {info['episodes']}")
    print(f"steps: {info['steps']}")
    el = info["episode_length"]
    if el:
        print(f"episode length: min {el['min']} mean {el['mean']:.2f} max {el['max']}")
    print("keys:")
    width = max((len(k) for k in info["keys"]), default=0)
    for key, k in info["keys"].items():
        print(f"  {key:<{width}}  shape {tuple(k['shape'])}  dtype {k['dtype']}  "
              f"min {k['min']:.6g}  max {k['max']:.6g}")
    if info["attrs"]:
        print("attrs:")
        for key, value in info["attrs"].items():
            text = json.dumps(value, default=str)
            print(f"  {key}: {text if len(text) <= 200 else text[:197] + '...'}")
    return 0


def _key_info(arr, n_steps: int) -> dict:
    lo, hi = np.inf, -np.inf
    step = max(1, arr.chunks[0])
    for b in range(0, n_steps, step):
        x = arr[b: min(b + step, n_steps)]
        lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    shape = (n_steps, *arr.shape[1:])
    return {"shape": list(shape), "dtype": str(arr.dtype),
            "min": lo if n_steps else float("nan"), "max": hi if n_steps else float("nan")}


# ---------------------------------------------------------------------- verify
def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="zarr store (ttfkit or Diffusion Policy layout)")


def _verify_main(args: argparse.Namespace) -> int:
    from ttfkit.data import ReplayBuffer

    problems = ReplayBuffer.verify(args.path)
    for line in problems:
        print(line)
    if problems:
        print(f"{args.path}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    buf = ReplayBuffer.open(args.path, mode="r")
    print(f"{buf.path}: ok ({buf.n_episodes} episodes, {buf.n_steps} steps, every chunk decoded)")
    return 0


# ---------------------------------------------------------------------- import-robomimic
def _robomimic_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("in_hdf5", help="robomimic HDF5 file (data/demo_N/{obs/*, actions, ...})")
    parser.add_argument("out_zarr", help="output zarr store (must not exist)")
    parser.add_argument("--obs-keys", nargs="+", default=None,
                        help="observation keys to keep (default: all under obs/)")
    parser.add_argument("--states", action="store_true",
                        help="also import each demo's simulator states (key 'states', float64)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store")


def _robomimic_main(args: argparse.Namespace) -> int:
    from ttfkit.data import import_robomimic

    buf = import_robomimic(args.in_hdf5, args.out_zarr, obs_keys=args.obs_keys,
                           overwrite=args.overwrite, states=args.states)
    print(f"wrote {buf.path}: {buf.n_episodes} episodes, {buf.n_steps} steps, keys {buf.keys()}")
    splits = {k: len(v) for k, v in buf.attrs.get("filter_keys", {}).items()}
    if splits:
        print(f"filter keys (episodes): {splits}; select one with SequenceDataset(..., filter_key=NAME)")
    return 0


INFO = SimpleNamespace(add_arguments=_info_arguments, main=_info_main)
IMPORT_ROBOMIMIC = SimpleNamespace(add_arguments=_robomimic_arguments, main=_robomimic_main)
VERIFY = SimpleNamespace(add_arguments=_verify_arguments, main=_verify_main)
