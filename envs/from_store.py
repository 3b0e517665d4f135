"""The env a dataset's episodes came from: ``env_for_store(path, obs_keys) -> (env_id, make_env kwargs)``.

Two kinds of store name their env:

- ``ttf data import-robomimic`` stores keep the file's ``env_args`` attr; the env is rebuilt by
  ``ttfkit.envs.robomimic.env_from_args`` (controller mapped to robosuite 1.5, robomimic observation
  keys passed through as ``obs_keys``).
- ``ttf collect`` stores keep the ``env_id`` they were collected in and the ``env_kwargs`` they used
  (``image_size``, ``camera``); a policy reading ``pixels`` gets ``pixels=True``.

Any other store is an error naming the path and what it lacks. The kwargs are JSON data (they go into
the evaluation's env spec). ``recorded_image_options(path)`` reads only the image options a ``ttf collect``
store recorded (what ``ttfkit.scripts.image_options`` uses to render what a pixel policy was trained on).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["env_for_store", "recorded_image_options"]

_STATE_KEYS = ("agent_pos", "environment_state")


def env_for_store(path: str | os.PathLike, obs_keys: tuple[str, ...] | list[str] = ()
                  ) -> tuple[str, dict[str, Any]]:
    """``(env_id, kwargs)`` for ``make_env`` rebuilding the env ``path``'s episodes were recorded in.

    Args:
        path: a zarr store written by ``ttf data import-robomimic`` or ``ttf collect``.
        obs_keys: the observation keys the policy reads (decides camera/robomimic-key options).

    Raises ``ValueError`` naming the store when it names no env, or when a collected store's
    observation keys cannot be produced from its recorded options.
    """
    from ttfkit.data import ReplayBuffer

    attrs = dict(ReplayBuffer.open(path, mode="r").attrs)
    if attrs.get("env_args"):
        from ttfkit.envs.robomimic import env_from_store

        return env_from_store(str(path), obs_keys)
    env_id = attrs.get("env_id")
    if not env_id:
        raise ValueError(f"{path}: the store names no env (no env_args attr from `ttf data import-robomimic`, "
                         f"no env_id attr from `ttf collect`; source {attrs.get('source')!r}): pass --env")
    kwargs = dict(attrs.get("env_kwargs") or {})
    if "cameras" in kwargs:
        raise ValueError(f"{path}: collected with several cameras ({kwargs['cameras']}); rebuilding that env "
                         "from the store is not supported: pass --env")
    other = [k for k in obs_keys if k not in (*_STATE_KEYS, "pixels")]
    if other:
        raise ValueError(f"{path}: observation keys {other} are not produced by {env_id} with the store's "
                         f"env_kwargs {kwargs}: pass --env")
    if "pixels" in obs_keys:
        if not attrs.get("pixels"):
            raise ValueError(f"{path}: the policy reads 'pixels' but the store was collected without --pixels")
        kwargs["pixels"] = True
    return str(env_id), kwargs


def recorded_image_options(path: str | os.PathLike | None) -> dict[str, Any]:
    """The ``image_size`` and ``camera`` a ``ttf collect`` store recorded in its ``env_kwargs`` attr ({} when
    ``path`` is None, unreadable or recorded none)."""
    if path is None:
        return {}
    from ttfkit.data import ReplayBuffer

    try:
        kwargs = dict(ReplayBuffer.open(path, mode="r").attrs).get("env_kwargs") or {}
    except (OSError, ValueError, KeyError):
        return {}
    return {k: kwargs[k] for k in ("image_size", "camera") if k in kwargs}
