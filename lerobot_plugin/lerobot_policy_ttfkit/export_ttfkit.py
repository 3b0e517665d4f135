"""ttfkit checkpoint -> LeRobot pretrained policy directory (``ttf export lerobot``).

Writes ``config.json`` (type "ttfkit", with ttfkit's normaliser in ``normalizer`` and every LeRobot
normalisation IDENTITY, so LeRobot's actions are ttfkit's own), ``model.safetensors`` (the policy's
weights and normaliser buffers) and the processor pipelines (``policy_preprocessor.json`` /
``policy_postprocessor.json``) into ``out_dir`` atomically (temporary sibling, then rename). LeRobot then loads it offline with
``TtfkitPolicy.from_pretrained(out_dir)`` / ``make_pre_post_processors(config, out_dir)`` or
``--policy.path=out_dir`` in its scripts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
from lerobot.utils.constants import ACTION

from ttfkit.data.atomic import replace_path
from lerobot_policy_ttfkit.configuration_ttfkit import DIAMOND_METHODS, TtfkitConfig
from lerobot_policy_ttfkit.modeling_ttfkit import TtfkitPolicy

__all__ = ["export_ttfkit_policy"]

_NAMED_FEATURES = {"agent_pos": ("observation.state", FeatureType.STATE),
                   "environment_state": ("observation.environment_state", FeatureType.ENV),
                   "pixels": ("observation.image", FeatureType.VISUAL)}
_DERIVED = ("obs_shapes", "action_dim", "horizon", "n_obs_steps", "n_action_steps")
_KIND = "lerobot-policy"  # ttfkit.data.atomic marker: --overwrite replaces only another policy export


def export_ttfkit_policy(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, *,
                         weights: str = "auto", align: dict | None = None, critic: Any = None,
                         diamond: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Export the ttfkit checkpoint directory ``checkpoint`` as a LeRobot policy in ``out_dir``.

    ``weights``: "auto" (EMA when saved, as ttfkit deploys), "model" or "ema". Observation keys map
    agent_pos -> observation.state, environment_state -> observation.environment_state, pixels ->
    observation.image (the name LeRobot's env wrapper gives a single camera) and every other
    (3, H, W) key K -> observation.images.K; other keys raise ``ValueError``. The config says
    ``push_to_hub: false`` (so ``lerobot-train --policy.path=out_dir`` needs no repo id).
    ``align``: inference-time alignment carried in the config, ``{"method": "best-of-n"|"smc"|...,
    "reward": registered reward name, "reward_options": {...}, **other AlignConfig fields}``
    (flow policies with a normaliser only; see ``modeling_ttfkit``). ``critic``: the ``ChunkCritic`` of
    reward "critic" (fitted for this checkpoint: checked), exported inside model.safetensors.
    ``diamond``: a ``ttf distill`` directory whose teacher is this checkpoint (checked: same weights and
    normaliser); the map's weights go inside model.safetensors. Without ``align`` the export is the one-step
    policy (one map call samples a chunk); with ``align`` method "smc" or "guidance" the map replaces GLASS
    as the posterior sampler.
    """
    from ttfkit.policies import load

    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass overwrite=True to replace it)")
    source = load(checkpoint, weights=weights)
    cfg = source.config
    inputs = {}
    for key, shape in cfg.obs_shapes.items():
        if key in _NAMED_FEATURES and (key != "pixels" or len(shape) == 3):
            feature, kind = _NAMED_FEATURES[key]
        elif len(shape) == 3:
            feature, kind = f"observation.images.{key}", FeatureType.VISUAL
        else:
            raise ValueError(f"{checkpoint}: observation key {key!r} {shape} has no LeRobot feature; "
                             f"supported: {sorted(_NAMED_FEATURES)} and (3, H, W) images")
        inputs[feature] = PolicyFeature(type=kind, shape=tuple(shape))
    outputs = {ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(cfg.action_dim,))}
    extra = {}
    dmap = None
    if diamond is not None:
        dmap, extra["diamond"] = _diamond_spec(diamond, source, checkpoint, align)
    if align:
        if source.name != "flow" or source.normalizer is None:
            raise ValueError(f"{checkpoint}: alignment needs a flow policy with a normaliser, got "
                             f"{source.name!r} (normaliser: {source.normalizer is not None})")
        align = dict(align)
        if align.get("reward") == "critic":
            from ttfkit.align.critic import check_critic

            if critic is None:
                raise ValueError("reward 'critic' needs the fitted critic (ttf export lerobot --critic DIR)")
            check_critic(critic, source)  # sizes and the policy fingerprint it was fitted for
            meta = {k: v for k, v in critic.meta.items() if k != "policy_fingerprint"}
            align["critic"] = {"sizes": critic.sizes, "meta": meta}
        extra["align"] = _jsonable(align)
    config = TtfkitConfig(
        policy=source.name, device="cpu", push_to_hub=False, input_features=inputs, output_features=outputs,
        n_obs_steps=cfg.n_obs_steps, horizon=cfg.horizon, n_action_steps=cfg.n_action_steps,
        policy_config={k: v for k, v in _jsonable(dataclasses.asdict(cfg)).items() if k not in _DERIVED},
        # ttfkit's normaliser inside the model (exact actions); LeRobot's processors pass through
        normalizer=source.normalizer.to_dict() if source.normalizer is not None else {},
        normalization_mapping={t: NormalizationMode.IDENTITY for t in ("VISUAL", "STATE", "ENV", "ACTION")},
        **extra)

    policy = TtfkitPolicy(config)  # save_pretrained writes its (identity) processors too
    if dmap is not None and policy.diamond is None:  # one-step: the map is the model's own submodule
        from ttfkit.align.one_step import OneStepPolicy

        policy.model.load_state_dict(OneStepPolicy(source, dmap).state_dict(), strict=True)
    else:
        policy.model.load_state_dict(source.state_dict(), strict=True)
    if policy.diamond is not None:
        policy.diamond.load_state_dict(dmap.state_dict(), strict=True)
    if policy.critic is not None:
        policy.critic.load_state_dict(critic.state_dict(), strict=True)

    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        policy.save_pretrained(tmp)
        replace_path(tmp, out, kind=_KIND, legacy=_is_policy_export)  # older exports: generic marker
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def _diamond_spec(path, source, checkpoint, align: dict | None) -> tuple[Any, dict]:
    """(DiamondMap, config's ``diamond`` entry) from the ``ttf distill`` directory ``path``, checked against
    the exported policy ``source`` (its teacher) and the ``align`` method that would use it."""
    from ttfkit.align.critic import policy_fingerprint
    from ttfkit.align.policy_diamond import load_diamond

    if source.name != "flow" or source.normalizer is None:
        raise ValueError(f"{checkpoint}: a Diamond Map needs a flow policy with a normaliser, got {source.name!r} "
                         f"(normaliser: {source.normalizer is not None})")
    method = (align or {}).get("method")
    if method is not None and method not in DIAMOND_METHODS:
        raise ValueError(f"--align {method} does not use a Diamond Map (it samples with the flow ODE); a map is "
                         "carried for the one-step policy (no --align) or as the posterior of smc / guidance")
    dmap, teacher = load_diamond(path)
    if teacher is None:
        raise ValueError(f"{path}: Diamond Map without teacher/, so it cannot be checked against {checkpoint}")
    want, got = policy_fingerprint(source), policy_fingerprint(teacher)
    if got != want:
        raise ValueError(f"{path}: Diamond Map distilled from policy {got}, not from {checkpoint} ({want}); export "
                         f"its teacher (--checkpoint {Path(path) / 'teacher'}) or distill a map for this checkpoint")
    saved = json.loads((Path(path) / "config.json").read_text())
    meta = {"source": str(path), "teacher_fingerprint": got, **saved.get("metadata", {})}
    return dmap, _jsonable({"config": dmap.config.to_dict(), "phi": saved["phi"], "meta": meta})


def _is_policy_export(path: Path) -> bool:
    """An export written before policy exports had their own marker kind: config.json of type "ttfkit"."""
    try:
        return json.loads((path / "config.json").read_text()).get("type") == "ttfkit"
    except (OSError, ValueError, AttributeError):
        return False


def _jsonable(obj):
    """Tuples -> lists, recursively (draccus writes config.json as JSON)."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj
