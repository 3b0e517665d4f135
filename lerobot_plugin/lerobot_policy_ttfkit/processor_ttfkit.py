"""Pre/post-processor pipelines of policy type "ttfkit", and ttfkit normaliser -> LeRobot stats.

``make_ttfkit_pre_post_processors`` (found by LeRobot's factory by name) builds LeRobot's own steps:
rename -> add batch dim -> device -> ``NormalizerProcessorStep`` before the policy, and
``UnnormalizerProcessorStep`` -> cpu after it, so LeRobot's tools (``lerobot-train`` swapping in a
dataset's stats, ``lerobot-record``, ``lerobot-eval``) treat it like any built-in policy.

LeRobot's normaliser passes a feature through untouched when its statistics are missing. ttfkit
refuses a partial set: :func:`check_stats` raises ``KeyError`` naming the feature, and it runs when
the pipelines are built, when the policy is built with dataset stats (``lerobot-train``), and on the
saved processor files when the policy loads with ``from_pretrained``. No statistics at all is
LeRobot's "fill in later" state (``make_pre_post_processors(config, None)``, a policy built before
any dataset): allowed when building, refused when a saved policy is loaded for use
(``from_pretrained`` warns and the policy refuses to act until it has statistics).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lerobot.configs.types import NormalizationMode
from lerobot.processor import (
    AddBatchDimensionProcessorStep,
    DeviceProcessorStep,
    NormalizerProcessorStep,
    PolicyAction,
    PolicyProcessorPipeline,
    RenameObservationsProcessorStep,
    UnnormalizerProcessorStep,
)
from lerobot.processor.converters import policy_action_to_transition, transition_to_policy_action
from lerobot.utils.constants import POLICY_POSTPROCESSOR_DEFAULT_NAME, POLICY_PREPROCESSOR_DEFAULT_NAME
from safetensors.torch import load_file

from lerobot_policy_ttfkit.configuration_ttfkit import TtfkitConfig

__all__ = ["make_ttfkit_pre_post_processors", "stats_from_normalizer", "check_stats",
           "load_saved_stats"]

_NEEDED = {NormalizationMode.MEAN_STD: ("mean", "std"), NormalizationMode.MIN_MAX: ("min", "max")}


def make_ttfkit_pre_post_processors(
    config: TtfkitConfig, dataset_stats: dict[str, dict[str, Any]] | None = None,
) -> tuple[PolicyProcessorPipeline, PolicyProcessorPipeline]:
    """(preprocessor, postprocessor) for ``config``; ``dataset_stats`` = {feature: {stat: array}}.

    Raises ``KeyError`` when a feature the policy uses (every input and the action, unless its
    type maps to IDENTITY) has no statistics.
    """
    check_stats(config, dataset_stats, where="dataset_stats")
    features = {**config.input_features, **config.output_features}
    pre = [
        RenameObservationsProcessorStep(rename_map={}),
        AddBatchDimensionProcessorStep(),
        DeviceProcessorStep(device=config.device),
        NormalizerProcessorStep(features=features, norm_map=config.normalization_mapping,
                                stats=dataset_stats),
    ]
    post = [
        UnnormalizerProcessorStep(features=config.output_features,
                                  norm_map=config.normalization_mapping, stats=dataset_stats),
        DeviceProcessorStep(device="cpu"),
    ]
    return (
        PolicyProcessorPipeline[dict[str, Any], dict[str, Any]](
            steps=pre, name=POLICY_PREPROCESSOR_DEFAULT_NAME),
        PolicyProcessorPipeline[PolicyAction, PolicyAction](
            steps=post, name=POLICY_POSTPROCESSOR_DEFAULT_NAME,
            to_transition=policy_action_to_transition, to_output=transition_to_policy_action),
    )


def stats_from_normalizer(normalizer: Any, features: dict[str, str]) -> dict[str, dict[str, np.ndarray]]:
    """LeRobot MIN_MAX stats reproducing ttfkit's affine maps.

    ttfkit normalises ``y = x * scale + offset``; LeRobot's MIN_MAX computes
    ``2 (x - min) / (max - min) - 1`` and unnormalises with its exact inverse. With
    ``min = (-1 - offset) / scale`` and ``max = (1 - offset) / scale`` both give the same y, for every
    ttfkit mode (for its default min-max mode these are the data's min and max). ``features`` maps
    LeRobot feature -> ttfkit key. Returns {feature: {"min": (F...), "max": (F...)}} float32.
    """
    out = {}
    table = normalizer.to_dict()
    for feature, key in features.items():
        if key not in table:
            raise KeyError(f"ttfkit normalizer has no stats for {key!r} (LeRobot feature "
                           f"{feature!r}); it has {sorted(table)}")
        shape = np.asarray(table[key]["min"]).shape
        # Read the affine map off the normaliser in float64: offset = f(0), scale = f(1) - f(0).
        offset = normalizer.normalize(key, torch.zeros(shape, dtype=torch.float64))
        scale = normalizer.normalize(key, torch.ones(shape, dtype=torch.float64)) - offset
        out[feature] = {"min": ((-1.0 - offset) / scale).float().numpy(),
                        "max": ((1.0 - offset) / scale).float().numpy()}
    return out


def check_stats(config: TtfkitConfig, stats: dict[str, dict[str, Any]] | None, where: str,
                outputs_only: bool = False) -> None:
    """Raise ``KeyError`` unless ``stats`` holds what the normaliser needs for every used feature
    (only the action with ``outputs_only``, as for the post-processor's unnormaliser). ``None`` or
    ``{}`` (no statistics yet, module docstring) passes."""
    if not stats:
        return
    missing = []
    used = config.output_features if outputs_only else {**config.input_features, **config.output_features}
    for feature, ft in used.items():
        mode = NormalizationMode(config.normalization_mapping.get(ft.type.value, NormalizationMode.IDENTITY))
        if mode is NormalizationMode.IDENTITY:
            continue
        have = (stats or {}).get(feature, {})
        lacking = [s for s in _NEEDED.get(mode, ()) if s not in have]
        if lacking or feature not in (stats or {}):
            missing.append(f"{feature} ({mode.value}: needs {list(_NEEDED.get(mode, ()))})")
    if missing:
        raise KeyError(f"{where}: no normalisation statistics for {missing}; LeRobot would pass "
                       f"these through unnormalised. Stats present for {sorted(stats or {})}")


def load_saved_stats(directory: str | Path, config: TtfkitConfig) -> dict[str, dict[str, torch.Tensor]]:
    """Statistics of the normaliser saved beside a pretrained policy in ``directory``
    ({feature: {stat: tensor}}, ``{}`` when it has none), after :func:`check_stats` on both the
    pre-processor's normaliser and the post-processor's unnormaliser."""
    directory = Path(directory)
    found = {}
    for pipeline, registry_name in ((POLICY_PREPROCESSOR_DEFAULT_NAME, "normalizer_processor"),
                                    (POLICY_POSTPROCESSOR_DEFAULT_NAME, "unnormalizer_processor")):
        file = directory / f"{pipeline}.json"
        if not file.is_file():
            raise FileNotFoundError(f"{file} not found: a ttfkit LeRobot policy directory holds its "
                                    "processors (save_pretrained and ttf export lerobot write them)")
        stats: dict[str, dict[str, torch.Tensor]] = {}
        for step in json.loads(file.read_text())["steps"]:
            if step.get("registry_name") == registry_name and step.get("state_file"):
                for name, value in load_file(directory / step["state_file"]).items():
                    feature, _, stat = name.rpartition(".")
                    stats.setdefault(feature, {})[stat] = value
        check_stats(config, stats, where=f"{file} ({registry_name})",
                    outputs_only=registry_name == "unnormalizer_processor")
        found[registry_name] = stats
    return found["normalizer_processor"]
