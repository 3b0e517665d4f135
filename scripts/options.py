"""Shared pieces of every ``ttf`` subcommand's argparse: help with defaults, renamed flags, value types.

- ``HelpFormatter``: keeps the module docstring's layout and appends ``(default: X)`` to each option
  whose default says something (not None, False or empty) and whose help does not already name one.
- ``deprecated_alias(container, old, target)``: ``old`` keeps working for one release as a spelling of
  the option ``target``: it acts exactly as ``target`` does, after a notice on stderr
  (``ttf CMD: warning: --old is deprecated ...``, printed once per command line) and a
  ``DeprecationWarning``. Old spellings are hidden from ``--help``. A required ``target`` stays
  required, and either spelling satisfies it (``check_required`` after parsing).
- ``KeyValueAction`` (``KEY=VALUE`` into a dict, JSON values), ``ReplaceAppend`` (a repeatable flag whose
  first use replaces a default list, e.g. one from a ``--config`` file), ``csv_of(type)`` (``a,b,c``).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import warnings
from typing import Callable

__all__ = ["HelpFormatter", "deprecated_alias", "check_required", "KeyValueAction", "ReplaceAppend",
           "csv_of", "key_value"]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written, and ``(default: X)`` after options whose default is worth showing."""

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and _default_text(action):  # an option without help still shows its default
            action = copy.copy(action)
            action.help = _default_text(action)
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        suffix = _default_text(action)
        return f"{text} {suffix}" if suffix and "default" not in text.lower() else text


def _default_text(action: argparse.Action) -> str:
    """``(default: X)`` (``%`` escaped for argparse's expansion), or "" when there is nothing to show."""
    default = action.default
    if (not action.option_strings or action.help is argparse.SUPPRESS or action.nargs == 0
            or default is argparse.SUPPRESS or default is None or default is False
            or (isinstance(default, (list, tuple, dict)) and not default)):
        return ""
    shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
    return f"(default: {str(shown).replace('%', '%%')})"


def deprecated_alias(container, old: str, target: argparse.Action,
                     apply: Callable[[argparse.Namespace, object], None] | None = None) -> argparse.Action:
    """Accept ``old`` as a deprecated spelling of ``target`` (an action of ``container``'s parser).

    ``apply(namespace, value)`` replaces ``target``'s own action when the old spelling meant something
    that is now spelt differently (``ttf eval --policy expert`` -> ``--expert``).
    """
    if target.required:  # either spelling satisfies it: checked by check_required after parsing
        target.required = False
        target.ttf_required = True
    return container.add_argument(old, action=_DeprecatedAlias, dest=target.dest, nargs=target.nargs,
                                  const=target.const, type=target.type, choices=target.choices,
                                  metavar=target.metavar, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                                  target=target, apply=apply)


def check_required(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """argparse's "required" check for options that also have a deprecated spelling (and for options a
    ``--config`` file left to the command line); exits through ``parser.error``."""
    missing = [a.option_strings[0] for a in parser._actions
               if getattr(a, "ttf_required", False) and getattr(args, a.dest, None) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")


class _DeprecatedAlias(argparse.Action):
    def __init__(self, option_strings, dest, target: argparse.Action, apply=None, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.target, self.apply, self.warned = target, apply, False

    def __call__(self, parser, namespace, values, option_string=None):
        new = self.target.option_strings[0]
        if not self.warned:
            self.warned = True
            text = f"{option_string} is deprecated and will be removed in the next release; use {new}"
            print(f"{parser.prog}: warning: {text}", file=sys.stderr)
            warnings.warn(text, DeprecationWarning, stacklevel=2)
        if self.apply is not None:
            self.apply(namespace, values)
        else:
            self.target(parser, namespace, values, new)


def key_value(text: str) -> tuple[str, object]:
    """``key=value`` with a JSON value (strings may be bare): hidden_dim=256, down_dims=[256,512,1024]."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


class KeyValueAction(argparse.Action):
    """Repeatable ``KEY=VALUE`` into a dict: each use sets one key over the default dict (a copy), so a
    ``--config`` file's dict keeps the keys the command line does not name."""

    def __init__(self, option_strings, dest, value_type: Callable[[object], object] | None = None, **kwargs):
        kwargs.setdefault("default", {})
        super().__init__(option_strings, dest, type=key_value, **kwargs)
        self.value_type = value_type

    def __call__(self, parser, namespace, values, option_string=None):
        key, value = values
        current = dict(getattr(namespace, self.dest, None) or {})
        try:
            current[key] = self.value_type(value) if self.value_type else value
        except (argparse.ArgumentTypeError, ValueError) as err:  # a usage error, not a traceback
            raise argparse.ArgumentError(self, f"{key}={value}: {err}") from err
        setattr(namespace, self.dest, current)


class ReplaceAppend(argparse.Action):
    """A repeatable flag collecting a list whose first use on the command line replaces the default."""

    def __call__(self, parser, namespace, values, option_string=None):
        seen = getattr(namespace, "_ttf_given", set())
        items = list(getattr(namespace, self.dest, None) or []) if self.dest in seen else []
        items.extend(values if isinstance(values, list) else [values])
        setattr(namespace, self.dest, items)
        namespace._ttf_given = seen | {self.dest}


def csv_of(kind: Callable[[str], object]) -> Callable[[str], tuple]:
    """argparse type for a comma-separated list: ``csv_of(float)("1e-3,1e-2") == (0.001, 0.01)``."""
    def parse(text: str) -> tuple:
        try:
            items = tuple(kind(x) for x in str(text).split(",") if x.strip())
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}") \
                from err
        if not items:
            raise argparse.ArgumentTypeError(f"expected at least one value, got {text!r}")
        return items
    parse.__name__ = f"csv of {kind.__name__}"
    return parse
