"""``--config FILE``: option values of a ``ttf`` subcommand from a YAML or JSON mapping.

A key is an option's name without the leading dashes, with ``_`` or ``-`` (``episode_seed`` or
``episode-seed`` for ``--episode-seed``), or the name the option stores its value under (``ema`` for
``--no-ema``, ``warmup_steps`` for ``--warmup``); a subcommand may accept more keys (``ttf train``: every
``TrainConfig`` field, so a run's saved ``train_config.json`` is itself a valid config; ``ttf gap``:
every ``GapConfig`` field, so ``gap_config.json`` is one too). File values are defaults: flags given
on the command line override them, each flag only itself (a ``KEY=VALUE`` flag sets one key of the
file's dict). An unknown key, a value of the wrong kind or an unreadable file is an error naming the
key and the file (``ttf CMD: error: FILE: ...``, exit status 2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ttfkit.scripts.options import KeyValueAction, ReplaceAppend, _DeprecatedAlias

__all__ = ["add_config_argument", "load_config", "apply_config"]


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="YAML or JSON file of option values (keys: option names without dashes); "
                             "flags given as well override it")


def load_config(path: str | Path) -> dict:
    """The mapping in ``path`` (``.json``: JSON; anything else: YAML, a superset of JSON)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ValueError(f"{path}: cannot read the config file ({err.strerror or err})") from err
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as err:  # noqa: BLE001 - json and yaml raise their own error types
        raise ValueError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file holds a mapping of option names to values, "
                         f"got {type(data).__name__}")
    return data


def apply_config(parser: argparse.ArgumentParser, values: dict, path: str | Path,
                 extra_keys=()) -> None:
    """Make ``values`` ``parser``'s defaults (checked; see the module docstring). ``extra_keys`` are
    accepted without an option (they reach the namespace as they are)."""
    options = [a for a in parser._actions if a.option_strings and not isinstance(a, _DeprecatedAlias)
               and a.dest not in ("help", "config", "debug", "resume")]
    actions = {a.dest: a for a in options}  # a key is an option's dest (TrainConfig's field names) ...
    for a in options:  # ... or, for an option taking a value, its long name
        for name in a.option_strings:
            if name.startswith("--") and a.nargs != 0:
                actions.setdefault(name[2:].replace("-", "_"), a)
    extra = set(extra_keys)
    defaults = {}
    for key, value in values.items():
        dest = str(key).replace("-", "_")
        if dest not in actions and dest not in extra:
            known = sorted(set(actions) | extra)
            raise ValueError(f"{path}: unknown key {key!r} (known keys: {', '.join(known)})")
        action = actions.get(dest)
        if action is not None:
            value = _checked(action, value, path, key)
            if value is not None and action.required:
                action.required = False  # the file gives it
        defaults[action.dest if action is not None else dest] = value
    parser.set_defaults(**defaults)


def _checked(action: argparse.Action, value, path, key):
    """``value`` as the option would hold it, or ValueError naming the key and the file."""
    def bad(expected: str):
        return ValueError(f"{path}: key {key!r} must be {expected}, got {value!r}")

    if value is None:
        return None
    if action.nargs == 0:  # store_true / store_false: the file gives the option's value itself
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(value, dict) != isinstance(action, KeyValueAction):
        raise bad("a mapping" if isinstance(action, KeyValueAction) else "a single value or a list")
    many = action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction) \
        or isinstance(action, ReplaceAppend)
    if many and not isinstance(value, list):
        value = [value]
    if not many and isinstance(value, list) and action.type in (None, int, float, str):
        raise bad("a single value")
    items = value if isinstance(value, list) else [value]
    for item in items if not isinstance(value, dict) else ():
        if action.type in (int, float) and (isinstance(item, bool) or not isinstance(item, (int, float))
                                            or (action.type is int and not isinstance(item, int))):
            raise bad(f"{'an integer' if action.type is int else 'a number'}{' or a list of them' if many else ''}")
        if action.choices is not None and item not in action.choices:
            raise bad(f"one of {sorted(action.choices)}")
    return value
