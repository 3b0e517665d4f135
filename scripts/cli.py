"""`ttf <subcommand>`: parsing only; each subcommand lives in its own module of ``ttfkit.scripts``.

A subcommand module defines ``add_arguments(parser)`` and ``main(args) -> int``; nested commands
(``ttf data info``, ``ttf export lerobot``) are argparse subparsers of their command's parser, so every
level dispatches the same way. Modules are imported only when their subcommand runs, so ``ttf --help``
stays fast and torch/MuJoCo load on demand. Help shows every option's default
(``ttfkit.scripts.options``); a module whose parser has ``--config`` takes option values from a YAML or
JSON file (``ttfkit.scripts.config_file``; ``module.config_keys()`` lists the keys it accepts beyond its
options, ``module.implied_config(argv)`` names a file its own options imply).

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

from ttfkit.scripts.config_file import apply_config, load_config
from ttfkit.scripts.options import HelpFormatter, check_required

__all__ = ["main", "parse", "SUBCOMMANDS"]

# argparse dests that count something: a value <= 0 is an error for every subcommand that has them
_COUNTS = ("threads", "n_envs", "episodes", "eval_episodes", "demos", "seeds", "steps", "batch", "batches")
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


def _parsers(available: dict[str, tuple[str, str]], name: str, module) -> tuple[argparse.ArgumentParser,
                                                                              argparse.ArgumentParser]:
    """(``ttf``'s parser, the parser of subcommand ``name``): argparse subparsers, one per subcommand;
    only ``name``'s options are built (its module imported), so other subcommands cost nothing."""
    lines = "\n".join(f"  {cmd:<10} {text}" for cmd, (_, text) in available.items())
    top = argparse.ArgumentParser(
        prog="ttf", description="ttfkit command line", formatter_class=HelpFormatter,
        epilog=f"subcommands:\n{lines}\n\nRun `ttf <subcommand> --help` for its options.",
        usage="ttf <subcommand> [options]")
    sub = top.add_subparsers(dest="command", metavar="<subcommand>", required=True, help=argparse.SUPPRESS)
    leaf = None
    for cmd in available:
        if cmd == name:
            leaf = sub.add_parser(cmd, prog=f"ttf {cmd}", description=module.__doc__,
                                  formatter_class=HelpFormatter)
            module.add_arguments(leaf)
            leaf.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
        else:
            sub.add_parser(cmd, prog=f"ttf {cmd}", add_help=False)  # listed by the epilog
    return top, leaf


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    available = _available()
    if not argv or argv[0] not in available:
        parser = _parsers(available, "", None)[0]
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown subcommand {argv[0]!r}; choose from {', '.join(available)}")
        parser.print_help()
        return 0 if argv else 2
    debug = "--debug" in argv[1:]  # taken anywhere, also after a nested command (`ttf data info`)
    try:
        module, parser, args = parse(argv)
    except ValueError as err:  # a bad --config file: the one error line, like the runtime errors below
        print(f"ttf {argv[0]}: error: {err}", file=sys.stderr)
        return 2
    try:
        return int(module.main(args) or 0)
    except Exception as err:  # noqa: BLE001 - the one error path of every subcommand
        if debug:
            raise
        print(f"{parser.prog}: error: {_describe(err)}", file=sys.stderr)
        return 2


def parse(argv: list[str]) -> tuple[object, argparse.ArgumentParser, argparse.Namespace]:
    """(subcommand module, its parser, parsed options) for ``argv`` = [subcommand, options...]:
    --config file values under the flags, deprecated spellings mapped (and warned about), required
    options and counts checked. Usage errors exit through argparse (status 2); a bad --config file
    raises ValueError naming the file and the key."""
    available = _available()
    name = argv[0]
    module = importlib.import_module(f"ttfkit.scripts.{available[name][0]}")
    top, parser = _parsers(available, name, module)
    rest = [a for a in argv[1:] if a != "--debug"]
    config = _config_file(module, parser, rest)
    if config is not None:
        apply_config(parser, load_config(config), config, extra_keys=getattr(module, "config_keys", tuple)())
    args = top.parse_args([name, *rest])
    leaf = _leaf(top, args)
    check_required(leaf, args)
    for dest in _COUNTS:
        value = getattr(args, dest, None)
        if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
            flag = next((a.option_strings[0] for a in leaf._actions if a.dest == dest and a.option_strings),
                        f"--{dest.replace('_', '-')}")
            leaf.error(f"{flag} must be >= 1, got {value}")
    return module, parser, args


def _config_file(module, parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """The ``--config FILE`` of a subcommand that takes one, or the file its own options imply
    (``module.implied_config(argv)``: ``ttf train --resume RUN_DIR`` reads RUN_DIR/train_config.json)."""
    if not any(a.dest == "config" for a in parser._actions):
        return None
    pre = argparse.ArgumentParser(add_help=False, prog=parser.prog)
    pre.add_argument("--config")
    given = pre.parse_known_args(argv)[0].config
    implied = getattr(module, "implied_config", lambda _: None)(argv)
    if given is not None and implied is not None:
        parser.error(f"give --config or what implies {implied}, not both")
    return given if given is not None else implied


def _leaf(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (possibly nested) subcommand that ``args`` came from."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None)
            if chosen in action.choices:
                return _leaf(action.choices[chosen], args)
    return parser


def _describe(err: Exception) -> str:
    text = str(err.args[0]) if isinstance(err, KeyError) and len(err.args) == 1 else str(err)
    text = text or type(err).__name__
    return text if isinstance(err, _PLAIN) else f"{type(err).__name__}: {text}"


if __name__ == "__main__":
    sys.exit(main())
