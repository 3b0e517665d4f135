"""`ttf <subcommand>`: parsing only; each subcommand lives in its own module of ``ttfkit.scripts``.

A subcommand module defines ``add_arguments(parser)`` and ``main(args) -> int``. Modules are imported
only when their subcommand runs, so ``ttf --help`` stays fast and torch/MuJoCo load on demand.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

__all__ = ["main", "SUBCOMMANDS"]

# name -> (module under ttfkit.scripts, one-line help). A subcommand appears once its module exists.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "data": ("data", "inspect, import and export datasets (info, import-robomimic, ...)"),
    "collect": ("collect", "roll scripted experts into a zarr dataset"),
    "train": ("train", "train a flow or diffusion policy on a dataset"),
    "eval": ("evaluate", "evaluate a checkpoint or expert in closed loop"),
    "gap": ("gap", "TTF-gap study: train optimizers, evaluate every checkpoint, report"),
    "distill": ("distill", "distill a Diamond Map from a flow policy"),
    "align": ("align", "closed-loop evaluation of a reward-aligned policy"),
    "export": ("export", "export a policy (LeRobot pretrained directory)"),
}


def _available() -> dict[str, tuple[str, str]]:
    return {
        name: (mod, text)
        for name, (mod, text) in SUBCOMMANDS.items()
        if importlib.util.find_spec(f"ttfkit.scripts.{mod}") is not None
    }


def _top_parser(available: dict[str, tuple[str, str]]) -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<10} {text}" for name, (_, text) in available.items())
    return argparse.ArgumentParser(
        prog="ttf",
        description="ttfkit command line",
        epilog=f"subcommands:\n{lines}\n\nRun `ttf <subcommand> --help` for its options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="ttf <subcommand> [options]",
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    available = _available()
    if not argv or argv[0] not in available:
        parser = _top_parser(available)
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown subcommand {argv[0]!r}; choose from {', '.join(available)}")
        parser.print_help()
        return 0 if argv else 2
    name = argv[0]
    module = importlib.import_module(f"ttfkit.scripts.{available[name][0]}")
    parser = argparse.ArgumentParser(prog=f"ttf {name}", description=module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
