"""LeRobot config of policy type "ttfkit": a ttfkit chunk policy (flow or diffusion) inside LeRobot.

Registered with ``@PreTrainedConfig.register_subclass("ttfkit")`` (LeRobot's plugin contract), so
``--policy.type=ttfkit`` and ``config.json`` files with ``"type": "ttfkit"`` resolve to it.

Key mapping (LeRobot feature -> ttfkit observation key, as ``ttf data export-lerobot`` writes them):
``observation.state`` -> ``agent_pos``, ``observation.environment_state`` -> ``environment_state``,
``observation.image`` -> ``pixels`` (LeRobot's name for a single camera: its gym wrapper renames a
single ``pixels`` array to it), ``observation.images.<K>`` -> ``<K>``, ``action`` -> the action.
Time line (LeRobot / Diffusion Policy): To observations, the last is "now"; a chunk of H actions
starts at the oldest observation and ``n_action_steps`` of them run from index To-1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import FeatureType, NormalizationMode
from lerobot.optim.optimizers import AdamWConfig
from lerobot.utils.constants import ACTION

__all__ = ["TtfkitConfig", "to_ttfkit_key", "DIAMOND_METHODS"]

_NAMED_KEYS = {"observation.state": "agent_pos", "observation.environment_state": "environment_state",
               "observation.image": "pixels"}
_IMAGE_PREFIX = "observation.images."
_POLICIES = ("flow", "diffusion")
DIAMOND_METHODS = ("smc", "guidance")  # the align methods that sample posteriors (best-of-N would ignore a map)


def to_ttfkit_key(feature: str) -> str:
    """ttfkit observation key of LeRobot input feature ``feature`` (see the module docstring)."""
    if feature in _NAMED_KEYS:
        return _NAMED_KEYS[feature]
    if feature.startswith(_IMAGE_PREFIX):
        return feature[len(_IMAGE_PREFIX):]
    raise KeyError(f"LeRobot feature {feature!r} has no ttfkit key; ttfkit reads "
                   f"{sorted(_NAMED_KEYS)} and {_IMAGE_PREFIX}<camera>")


@PreTrainedConfig.register_subclass("ttfkit")
@dataclass
class TtfkitConfig(PreTrainedConfig):
    """Configuration of :class:`TtfkitPolicy`.

    Args:
        policy: ttfkit policy name ("flow" or "diffusion", ``ttfkit.policies.make_policy``).
        policy_config: ttfkit config fields other than the ones derived here (backbone,
            backbone_options, encoder, num_steps, sampler, ...); ``obs_shapes`` and ``action_dim``
            come from ``input_features``/``output_features``.
        n_obs_steps: To, observations per prediction (the last is "now").
        horizon: H, actions per predicted chunk.
        n_action_steps: actions executed per chunk, taken from index To-1.
        normalization_mapping: LeRobot normalisation per feature type, for a policy trained in
            LeRobot. MIN_MAX everywhere by default: LeRobot computes ``2 (x - min) / (max - min) - 1``
            and its exact inverse, ttfkit's default min-max map on the dataset's min/max (MEAN_STD
            divides by std + 1e-8 but unnormalises with std). IDENTITY everywhere with ``normalizer``.
        normalizer: ttfkit's normaliser (``Normalizer.to_dict()``). When set, the wrapped ttfkit
            policy normalises its inputs and unnormalises its actions itself, with ttfkit's own
            arithmetic, so its actions equal ttfkit's exactly; every LeRobot normalisation must then
            be IDENTITY (``ttf export lerobot`` writes such configs). Empty: LeRobot's processors
            normalise (a policy trained in LeRobot with ``--policy.type=ttfkit``).
        align: inference-time alignment settings carried with the policy (e.g. {"method": "smc",
            "reward": "goal_distance", "particles": 16}); empty for plain sampling.
        diamond: a Diamond Map distilled from this flow policy (``ttf export lerobot --diamond DIR``):
            {"config": DiamondConfig fields, "phi": its network sizes (``ttfkit.align.policy_diamond``),
            "meta": provenance}; its weights travel in model.safetensors. Without ``align`` the policy is
            ttfkit's one-step policy (one map call at t=0 samples a chunk; weights ``model.dmap.*``); with
            ``align`` (method "smc" or "guidance") the map is the aligner's posterior sampler (``diamond.*``).
        optimizer_lr, optimizer_betas, optimizer_eps, optimizer_weight_decay, optimizer_grad_clip_norm:
            AdamW preset used by ``lerobot-train``.
    """

    policy: str = "flow"
    policy_config: dict[str, Any] = field(default_factory=dict)
    n_obs_steps: int = 2
    horizon: int = 16
    n_action_steps: int = 8
    normalization_mapping: dict[str, NormalizationMode] = field(default_factory=lambda: {
        "VISUAL": NormalizationMode.MIN_MAX, "STATE": NormalizationMode.MIN_MAX,
        "ENV": NormalizationMode.MIN_MAX, "ACTION": NormalizationMode.MIN_MAX})
    normalizer: dict[str, Any] = field(default_factory=dict)
    align: dict[str, Any] = field(default_factory=dict)
    diamond: dict[str, Any] = field(default_factory=dict)
    optimizer_lr: float = 1e-4
    optimizer_betas: tuple[float, float] = (0.95, 0.999)
    optimizer_eps: float = 1e-8
    optimizer_weight_decay: float = 1e-6
    optimizer_grad_clip_norm: float = 10.0

    def __post_init__(self):
        super().__post_init__()
        if self.policy not in _POLICIES:
            raise ValueError(f"TtfkitConfig: policy must be one of {_POLICIES}, got {self.policy=}")
        # horizon / n_obs_steps / n_action_steps are checked by ttfkit's own config when the
        # policy is built (TtfkitPolicy.__init__), with the values in the message.
        if self.normalizer:
            modes = {str(k): NormalizationMode(v).value for k, v in self.normalization_mapping.items()}
            if set(modes.values()) != {NormalizationMode.IDENTITY.value}:
                raise ValueError(f"TtfkitConfig: with a ttfkit normalizer every normalization_mapping "
                                 f"entry must be IDENTITY (else inputs are normalised twice), got {modes}")
        if self.diamond:
            missing = sorted({"config", "phi"} - set(self.diamond))
            if missing or self.policy != "flow":
                raise ValueError(f"TtfkitConfig: diamond needs a flow policy and the keys 'config' and 'phi', got "
                                 f"{self.policy=} and keys {sorted(self.diamond)}")
            method = self.align.get("method", "none") if self.align else None
            if method is not None and method not in DIAMOND_METHODS:
                raise ValueError(f"TtfkitConfig: a Diamond Map is used by align methods {DIAMOND_METHODS}, got "
                                 f"{method=}")
        derived = {"obs_shapes", "action_dim", "horizon", "n_obs_steps", "n_action_steps"}
        clash = sorted(derived & set(self.policy_config))
        if clash:
            raise ValueError(f"TtfkitConfig: policy_config must not set {clash}; they come from the "
                             "features and the top-level fields")

    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig(lr=self.optimizer_lr, betas=self.optimizer_betas, eps=self.optimizer_eps,
                           weight_decay=self.optimizer_weight_decay,
                           grad_clip_norm=self.optimizer_grad_clip_norm)

    def get_scheduler_preset(self) -> None:
        return None  # constant learning rate

    def validate_features(self) -> None:
        if not self.output_features or ACTION not in self.output_features:
            raise ValueError(f"TtfkitConfig: output_features need {ACTION!r}, got "
                             f"{sorted(self.output_features or {})}")
        if len(self.output_features[ACTION].shape) != 1:
            raise ValueError(f"TtfkitConfig: action must be (Da,), got {self.output_features[ACTION].shape}")
        if not self.input_features:
            raise ValueError("TtfkitConfig: no input_features")
        for key, ft in self.input_features.items():
            to_ttfkit_key(key)  # raises for features ttfkit cannot read
            if ft.type is FeatureType.VISUAL and len(ft.shape) != 3:
                raise ValueError(f"TtfkitConfig: image feature {key!r} must be (3, H, W), got {ft.shape}")

    @property
    def observation_delta_indices(self) -> list[int]:
        return list(range(1 - self.n_obs_steps, 1))

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(1 - self.n_obs_steps, 1 - self.n_obs_steps + self.horizon))

    @property
    def reward_delta_indices(self) -> None:
        return None
