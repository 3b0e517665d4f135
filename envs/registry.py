"""Registry of ttfkit task ids on top of gymnasium's registry.

Every task lives in the ``ttfkit/`` gymnasium namespace (``ttfkit/metaworld-pick-place-v3``,
``ttfkit/fetch-push-v4``) and is registered with a string entry point, so MuJoCo, Meta-World and
gymnasium-robotics are imported only when an env is built. ``import ttfkit.envs`` registers all ids.

``make_env(env_id, seed=None, **kwargs)`` is ``gymnasium.make`` plus one seeded ``reset``;
``list_envs()`` lists the registered ids; ``env_spec_json(env_id, **kwargs)`` is the JSON form of the
exact spec an env was built from (stored with evaluation results); ``env_options(env_id, **kwargs)`` the
keyword options its constructor receives, defaults included.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import gymnasium as gym

__all__ = ["make_env", "list_envs", "register_env", "env_spec_json", "env_options", "NAMESPACE"]

logger = logging.getLogger(__name__)

NAMESPACE = "ttfkit"
_ENV_IDS: list[str] = []  # written once at import by the suite modules


def register_env(env_id: str, entry_point: str, max_episode_steps: int, kwargs: dict[str, Any]) -> None:
    """Register ``env_id`` (must start with ``ttfkit/``) with gymnasium; registering twice is an error."""
    if not env_id.startswith(f"{NAMESPACE}/"):
        raise ValueError(f"env id {env_id!r} must start with {NAMESPACE!r}/")
    if env_id in _ENV_IDS or env_id in gym.registry:
        raise ValueError(f"env id {env_id!r} is already registered")
    if max_episode_steps <= 0:
        raise ValueError(f"{max_episode_steps=} must be positive for {env_id!r}")
    gym.register(id=env_id, entry_point=entry_point, max_episode_steps=max_episode_steps,
                 kwargs=dict(kwargs))  # gymnasium's passive env checker stays on (its default)
    _ENV_IDS.append(env_id)


def list_envs(suite: str | None = None) -> list[str]:
    """Sorted registered ids, optionally only one suite (``"metaworld"`` or ``"fetch"``)."""
    ids = sorted(_ENV_IDS)
    if suite is not None:
        ids = [i for i in ids if i.startswith(f"{NAMESPACE}/{suite}-")]
        if not ids:
            raise ValueError(f"no registered env for suite {suite!r}; known ids start with "
                             f"{sorted({i.split('/')[1].split('-')[0] for i in _ENV_IDS})}")
    return ids


def _check_id(env_id: str) -> None:
    if env_id not in _ENV_IDS:
        close = [i for i in _ENV_IDS if env_id.split("/")[-1].split("-v")[0] in i][:5]
        raise KeyError(f"unknown env id {env_id!r}" + (f"; did you mean one of {close}?" if close else
                                                       f"; {len(_ENV_IDS)} ids, see ttfkit.envs.list_envs()"))


def make_env(env_id: str, seed: int | None = None, **kwargs: Any) -> gym.Env:
    """Build a registered env (``gymnasium.make(env_id, **kwargs)``).

    Args:
        env_id: a ``ttfkit/...`` id (see ``list_envs()``).
        seed: when given, the env is reset once with ``reset(seed=seed)`` and its action space is
            seeded, so later ``reset()`` calls without a seed continue that random stream.
        kwargs: env options (``pixels=True``, ``image_size``, ``camera``, ``render_mode``,
            ``render_size``, ``terminate_on_success``) and gymnasium's ``max_episode_steps`` /
            ``disable_env_checker``.
    """
    _check_id(env_id)
    env = gym.make(env_id, **kwargs)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def env_options(env_id: str, **kwargs: Any) -> dict[str, Any]:
    """The keyword options ``make_env(env_id, **kwargs)`` passes to the env's constructor, with the constructor's
    defaults filled in: ``{"camera": "corner"}`` and ``{}`` give the same options for a Meta-World id."""
    _check_id(env_id)
    spec = gym.spec(env_id)
    creator = gym.envs.registration.load_env_creator(spec.entry_point)
    defaults = {name: p.default for name, p in inspect.signature(creator).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return defaults | spec.kwargs | kwargs


def env_spec_json(env_id: str, **kwargs: Any) -> str:
    """JSON of the gymnasium ``EnvSpec`` with ``kwargs`` merged in (what ``make_env`` would build)."""
    _check_id(env_id)
    spec = gym.spec(env_id)
    max_steps = kwargs.pop("max_episode_steps", None)
    merged = spec.kwargs | kwargs
    spec = gym.envs.registration.EnvSpec(
        id=spec.id, entry_point=spec.entry_point, max_episode_steps=max_steps or spec.max_episode_steps,
        kwargs=merged, disable_env_checker=spec.disable_env_checker)
    return spec.to_json()
