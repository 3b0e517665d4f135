"""Policy registry: ``@register_policy("flow", config=FlowConfig)`` on the class; look-ups by name.

The registry name is the module name: ``make_policy("flow")`` imports ``ttfkit.policies.flow`` on
demand, and ``list_policies()`` imports every module of the package that may register one.
Registering a name twice is an error. Configs are frozen dataclasses; ``config_from_dict`` rebuilds
one from its JSON form (nested dataclasses and tuples restored, unknown keys rejected).
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from typing import Any, Callable

__all__ = ["register_policy", "make_policy", "list_policies", "get_policy_class", "config_from_dict"]

_REGISTRY: dict[str, type] = {}
_POLICY_MODULES = ("flow", "diffusion")


def register_policy(name: str, config: type) -> Callable[[type], type]:
    """Class decorator: register ``cls`` under ``name`` with its config dataclass ``config``."""

    def wrap(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"policy {name!r} is already registered by {_REGISTRY[name].__module__}")
        cls.name = name
        cls.config_class = config
        _REGISTRY[name] = cls
        return cls

    return wrap


def get_policy_class(name: str) -> type:
    """The class registered as ``name`` (imports ``ttfkit.policies.<name>`` if needed)."""
    if name not in _REGISTRY and importlib.util.find_spec(f"ttfkit.policies.{name}") is not None:
        importlib.import_module(f"ttfkit.policies.{name}")
    if name not in _REGISTRY:
        raise KeyError(f"unknown policy {name!r}; registered: {list_policies()}")
    return _REGISTRY[name]


def make_policy(name: str, normalizer=None, **config: Any):
    """Build policy ``name`` from config fields (``obs_shapes``, ``action_dim``, ...).

    ``normalizer`` is a ``ttfkit.data.Normalizer`` fitted on the observation and action keys; None
    means inputs are already normalised (identity).
    """
    cls = get_policy_class(name)
    return cls(config_from_dict(cls.config_class, config), normalizer=normalizer)


def list_policies() -> list[str]:
    """Every registered policy name."""
    for module in _POLICY_MODULES:
        importlib.import_module(f"ttfkit.policies.{module}")
    return sorted(_REGISTRY)


def config_from_dict(cls: type, data: dict[str, Any]):
    """``cls(**data)`` with nested dataclass fields built from dicts and lists turned into tuples."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected a dict of options, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise TypeError(f"{cls.__name__} has no option(s) {sorted(unknown)}; options: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        hint = hints.get(key)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = config_from_dict(hint, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)
