"""`ttf <subcommand>`: parsing only; each subcommand lives in its own module of ``ttfkit.scripts``.

A subcommand module defines ``add_arguments(parser)`` and ``main(args) -> int``. Modules are imported
only when their subcommand runs, so ``ttf --help`` stays fast and torch/MuJoCo load on demand.

Errors take one path for every subcommand: ``ttf CMD: error: <what, which file or key>`` on stderr
and exit status 2, like argparse's own usage errors; ``--debug`` (accepted by every subcommand)
re-raises instead, with the traceback. Counts (``_COUNTS``) must be >= 1: zero or a negative number
is refused, never read as "the default".
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

__all__ = ["main", "SUBCOMMANDS"]

# argparse dests that count something: a value <= 0 is an error for every subcommand that has them
_COUNTS = ("threads", "n_envs", "episodes", "demos", "seeds", "steps", "batch", "batches")
# exception types whose message already says what went wrong; others are shown with their type name
_PLAIN = (ValueError, KeyError, OSError, FloatingPointError, RuntimeError, ImportError)

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
    "critic": ("critic", "fit a chunk critic (deployable alignment reward) on the policy's own rollouts"),
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
    parser.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
    debug = "--debug" in argv[1:]  # taken anywhere, also after a nested command (`ttf data info`)
    args = parser.parse_args([a for a in argv[1:] if a != "--debug"])
    for dest in _COUNTS:
        value = getattr(args, dest, None)
        if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
            parser.error(f"--{dest.replace('_', '-')} must be >= 1, got {value}")
    try:
        return int(module.main(args) or 0)
    except Exception as err:  # noqa: BLE001 - the one error path of every subcommand
        if debug:
            raise
        print(f"{parser.prog}: error: {_describe(err)}", file=sys.stderr)
        return 2


def _describe(err: Exception) -> str:
    text = str(err.args[0]) if isinstance(err, KeyError) and len(err.args) == 1 else str(err)
    text = text or type(err).__name__
    return text if isinstance(err, _PLAIN) else f"{type(err).__name__}: {text}"


if __name__ == "__main__":
    sys.exit(main())
