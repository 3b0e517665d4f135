"""Checkpoint directories: data, not pickles.

Layout of ``<path>/`` (format_version 1)::

    config.json               {"format_version", "policy", "policy_config", "has_normalizer",
                               "has_ema", "metadata" (free JSON: train/data config, step, ...)}
    model.safetensors         "model.<name>" weights and, if saved, "ema.<name>" EMA weights
    normalizer.safetensors    ``Normalizer.save`` stats (absent for an identity normaliser)
    trainer_state.json        optional resumable trainer state; tensors replaced by references
    trainer_state.safetensors   ... into this file (optimizer moments, RNG states)

Writes go to a temporary sibling directory that is renamed into place, so a crash never leaves a
half-written checkpoint at ``path``; the directory carries ttfkit's marker (``.ttfkit.json``, kind
"policy-checkpoint"), and only a marked checkpoint is ever replaced. Non-finite weights are refused
(``save`` raises), and every read error names the file. ``load`` rebuilds the policy from config.json alone (no class
paths), and ``_upgrade`` is where older format versions will be converted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ttfkit.data.atomic import check_replaceable, replace_path

__all__ = ["save", "load", "read_weights", "read_trainer_state", "FORMAT_VERSION", "KIND"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "policy-checkpoint"  # ttfkit.data.atomic marker
_CONFIG, _MODEL, _NORMALIZER = "config.json", "model.safetensors", "normalizer.safetensors"
_STATE_JSON, _STATE_TENSORS = "trainer_state.json", "trainer_state.safetensors"


def save(policy, path: str | os.PathLike, *, ema: nn.Module | None = None, metadata: dict | None = None,
         trainer_state: dict | None = None) -> Path:
    """Write ``policy`` (and optionally its EMA copy and trainer state) to directory ``path``, atomically.

    ``ema`` is a module with the same state-dict keys as ``policy`` (``EMA.shadow``). ``trainer_state``
    is any nest of dicts/lists/tuples/scalars/tensors (e.g. an optimizer ``state_dict``).
    """
    path = Path(path)
    weights = {f"model.{k}": v for k, v in policy.state_dict().items()}
    if ema is not None:
        weights.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    _check_finite(weights, path)
    check_replaceable(path, KIND)  # before any work; replace_path checks again at the rename
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        save_file(_contiguous(weights), tmp / _MODEL, metadata={"format_version": str(FORMAT_VERSION)})
        if policy.normalizer is not None:
            policy.normalizer.save(tmp / _NORMALIZER)
        config = {
            "format_version": FORMAT_VERSION,
            "policy": policy.name,
            "policy_config": dataclasses.asdict(policy.config),
            "has_normalizer": policy.normalizer is not None,
            "has_ema": ema is not None,
            "metadata": metadata or {},
        }
        (tmp / _CONFIG).write_text(json.dumps(config, indent=2))
        if trainer_state is not None:
            tensors: dict[str, torch.Tensor] = {}
            skeleton = _flatten(trainer_state, tensors)
            save_file(_contiguous(tensors), tmp / _STATE_TENSORS)
            (tmp / _STATE_JSON).write_text(json.dumps(skeleton))
        replace_path(tmp, path, kind=KIND)
    except FileExistsError:  # replace_path refused what is at path
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except (OSError, SafetensorError) as err:  # a full disk reaches safetensors' writer as SafetensorError
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(getattr(err, "errno", None), f"{path}: cannot write the checkpoint ({err})") from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("saved %s checkpoint to %s", policy.name, path)
    return path


def load(path: str | os.PathLike, device: str | torch.device = "cpu", weights: str = "auto"):
    """Rebuild the policy saved at ``path``; eval mode, on ``device``.

    ``weights``: "model", "ema", or "auto" (EMA when the checkpoint has it; that is what training
    evaluates and deploys).
    """
    from ttfkit.policies.registry import config_from_dict, get_policy_class

    path = Path(path)
    config = read_config(path)
    cls = get_policy_class(config["policy"])
    normalizer = None
    if config["has_normalizer"]:
        from ttfkit.data import Normalizer

        normalizer = Normalizer.load(path / _NORMALIZER)
    try:
        policy = cls(config_from_dict(cls.config_class, config["policy_config"]), normalizer=normalizer)
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{path / _CONFIG}: invalid policy_config ({type(err).__name__}: {err})") from err
    model, ema = read_weights(path)
    if weights not in ("auto", "model", "ema"):
        raise ValueError(f"weights must be 'auto', 'model' or 'ema', got {weights!r}")
    if weights == "ema" and ema is None:
        raise KeyError(f"checkpoint {path} has no EMA weights (config.json has_ema=false)")
    chosen = ema if weights in ("auto", "ema") and ema is not None else model
    try:
        policy.load_state_dict(chosen)
    except RuntimeError as err:
        raise ValueError(f"weights in {path / _MODEL} do not match the {config['policy']!r} config: {err}") from err
    return policy.to(device).eval()


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """config.json of checkpoint ``path``, upgraded to the current format."""
    file = Path(path) / _CONFIG
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found: {path} is not a ttfkit policy checkpoint")
    config = _read_json(file)
    missing = sorted({"format_version", "policy", "policy_config", "has_normalizer"} - set(config))
    if missing:
        raise ValueError(f"{file}: not a ttfkit checkpoint config (missing {missing})")
    return _upgrade(config, file)


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """(model state dict, EMA state dict or None) from ``path``/model.safetensors."""
    flat = _read_safetensors(Path(path) / _MODEL)
    model = {k[len("model."):]: v for k, v in flat.items() if k.startswith("model.")}
    ema = {k[len("ema."):]: v for k, v in flat.items() if k.startswith("ema.")}
    return model, (ema or None)


def read_trainer_state(path: str | os.PathLike) -> dict | None:
    """The ``trainer_state`` saved with the checkpoint at ``path`` (None if it has none)."""
    path = Path(path)
    if not (path / _STATE_JSON).is_file():
        return None
    tensors = _read_safetensors(path / _STATE_TENSORS)
    skeleton = _read_json(path / _STATE_JSON)
    try:
        return _unflatten(skeleton, tensors)
    except KeyError as e:
        raise ValueError(f"{path / _STATE_JSON}: refers to tensor {e} that "
                         f"{path / _STATE_TENSORS} does not hold") from e


def _read_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{file}: unreadable JSON ({type(e).__name__}: {e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{file}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found")
    try:
        return load_file(file)
    except Exception as e:  # noqa: BLE001 - SafetensorError, OSError, ...: always name the file
        raise ValueError(f"{file}: not a readable safetensors file ({type(e).__name__}: {e})") from e


def _check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{path}: refusing to save a checkpoint with non-finite values in "
                             f"{name!r} ({int((~torch.isfinite(t)).sum())} of {t.numel()} entries)")


def _upgrade(config: dict, file: Path) -> dict:
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{file}: format_version {version!r} is not supported (this ttfkit writes {FORMAT_VERSION})")
    return config


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def _flatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON skeleton of ``obj`` with tensors moved into ``tensors`` (mutated) and referenced by key."""
    if torch.is_tensor(obj):
        key = f"t{len(tensors)}"
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _flatten(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_flatten(k, tensors), _flatten(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_flatten(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_flatten(v, tensors) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint's trainer state: {obj!r}")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__items__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__items__"]}
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        return {k: _unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj
