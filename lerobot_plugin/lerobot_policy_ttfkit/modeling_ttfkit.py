"""LeRobot policy type "ttfkit": a ``PreTrainedPolicy`` wrapping a ttfkit chunk policy.

Two ways to normalise:
- Exports (``ttf export lerobot``): ttfkit's normaliser lives inside the wrapped policy (its stats in
  ``config.normalizer``) and every LeRobot normalisation is IDENTITY, so LeRobot hands over
  observations in dataset units and gets actions in env units, computed by ttfkit's own code:
  the same actions as ttfkit's ``predict_action_chunk`` / ``select_action`` for the same noise
  (bit for bit on CPU). ``lerobot-train`` fine-tuning keeps that normaliser.
- A policy trained in LeRobot (``--policy.type=ttfkit``): LeRobot's processors normalise
  (``processor_ttfkit``, MIN_MAX by default) and the wrapped policy sees normalised data.

With ``config.align`` set (``ttf export lerobot --align ...``) the chunks come from ttfkit's
``AlignedPolicy`` (best-of-N / SMC / guidance under a registered reward), which reads chunks and
observations in env units through the same inside normaliser.

With ``config.diamond`` set (``ttf export lerobot --diamond DIR``) a Diamond Map distilled from the flow policy
travels in model.safetensors: without ``align`` the wrapped model is ttfkit's ``OneStepPolicy`` (one map call
samples a chunk; the map's weights are ``model.dmap.*``), with ``align`` the map is ``AlignedPolicy``'s posterior
sampler for SMC / guidance (``diamond.*``). The one-step sampler draws, after the initial noise, the map's x_0
input from the same ``generator``.

Batch shapes (B batch, To obs steps, H horizon, Da action dim), in the units LeRobot's processors
hand over (dataset units for exports, normalised otherwise):
- ``forward`` (training, LeRobotDataset with this config's delta timestamps): ``observation.*``
  (B, To, ...) and ``action`` (B, H, Da) -> (loss, {"loss": float}).
- ``predict_action_chunk``: ``observation.*`` (B, To, ...) or one step (B, ...), which is repeated
  To times as at an episode start -> chunk (B, H, Da).
- ``select_action``: one step (B, ...) -> (B, Da); keeps the last To steps and a queue of
  n_action_steps actions from chunk[To-1 : To-1+n_action_steps], as LeRobot's diffusion policy does.
"""

import logging
import os
from collections import deque
from pathlib import Path
from typing import Any

import torch
from lerobot.configs.types import NormalizationMode
from lerobot.policies.pretrained import PreTrainedPolicy
from lerobot.utils.constants import ACTION
from torch import Tensor

from lerobot_policy_ttfkit.configuration_ttfkit import TtfkitConfig, to_ttfkit_key
from lerobot_policy_ttfkit.processor_ttfkit import check_stats, load_saved_stats, make_ttfkit_pre_post_processors

__all__ = ["TtfkitPolicy"]

logger = logging.getLogger(__name__)


class TtfkitPolicy(PreTrainedPolicy):
    """ttfkit flow / diffusion policy behind LeRobot's policy interface (module docstring)."""

    config_class = TtfkitConfig
    name = "ttfkit"

    def __init__(self, config: TtfkitConfig, dataset_stats: dict[str, dict[str, Any]] | None = None,
                 **kwargs: Any):
        super().__init__(config)
        config.validate_features()
        # lerobot-train hands the dataset's stats to the processors and here; the policy keeps them
        # so that save_pretrained writes the processors from_pretrained reads (LeRobot's contract).
        check_stats(config, dataset_stats, where="dataset stats")
        self.dataset_stats = dataset_stats or None
        from ttfkit.policies import make_policy

        self.key_map = {feature: to_ttfkit_key(feature) for feature in config.input_features}
        obs_shapes = {self.key_map[f]: tuple(ft.shape) for f, ft in config.input_features.items()}
        align = dict(config.align)
        # ttfkit's normaliser inside the model (exports; alignment rewards need env units), stats from
        # config.normalizer or, in exports made before that field, from config.align["normalizer"].
        stats = dict(config.normalizer) or align.pop("normalizer", None)
        align.pop("normalizer", None)
        if align and not stats:
            raise KeyError("TtfkitConfig.align needs the ttfkit normalizer stats in "
                           "TtfkitConfig.normalizer (ttf export lerobot --align writes them)")
        normalizer = None
        if stats:
            from ttfkit.data import Normalizer

            normalizer = Normalizer.from_dict(stats)
        model = make_policy(config.policy, normalizer=normalizer, **{
            **config.policy_config, "obs_shapes": obs_shapes,
            "action_dim": config.output_features[ACTION].shape[0], "horizon": config.horizon,
            "n_obs_steps": config.n_obs_steps, "n_action_steps": config.n_action_steps})
        # a critic reward and a Diamond Map travel as submodules, so their weights live in model.safetensors
        self.critic = _make_critic(align.pop("critic")) if "critic" in align else None
        self.diamond = None
        if config.diamond:
            dmap = _make_diamond(model, config.diamond)
            if align:
                self.diamond = dmap  # the aligner's posterior sampler
            else:
                from ttfkit.align.one_step import OneStepPolicy

                model = OneStepPolicy(model, dmap)  # one map call per chunk
        self.model = model
        self.aligned = _make_aligned(self.model, align, self.critic, self.diamond) if align else None
        self._obs_history: deque = deque(maxlen=config.n_obs_steps)
        self._action_queue: deque = deque()

    @classmethod
    def from_pretrained(cls, pretrained_name_or_path: str | Path, *, strict: bool = True,
                        **kwargs: Any) -> "TtfkitPolicy":
        """LeRobot's loader with strict weight matching; a local directory must hold the processors
        (``save_pretrained`` writes them), whose statistics are checked and kept unless
        ``dataset_stats`` were passed (``lerobot-train`` passes the dataset's)."""
        policy = super().from_pretrained(pretrained_name_or_path, strict=strict, **kwargs)
        if os.path.isdir(pretrained_name_or_path):
            saved = load_saved_stats(pretrained_name_or_path, policy.config)
            if policy.dataset_stats is None:
                policy.dataset_stats = saved or None
            if not saved and policy._needs_stats():
                logger.warning("%s: the saved processors hold no normalisation statistics (a policy "
                               "saved before it saw a dataset)", pretrained_name_or_path)
        return policy

    def _save_pretrained(self, save_directory: Path) -> None:
        """config.json + model.safetensors (LeRobot) and the pre/post-processors built from this
        policy's statistics (``policy_preprocessor.json``, ``policy_postprocessor.json`` and their
        state files), which ``from_pretrained`` and ``make_pre_post_processors`` read."""
        super()._save_pretrained(save_directory)
        pre, post = make_ttfkit_pre_post_processors(self.config, dataset_stats=self.dataset_stats)
        pre.save_pretrained(save_directory)
        post.save_pretrained(save_directory)

    def get_optim_params(self) -> Any:
        return self.model.parameters()

    def reset(self) -> None:
        self._obs_history.clear()
        self._action_queue.clear()
        if self.aligned is not None:
            self.aligned.reset()

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Training loss on a normalised batch (module docstring) -> (loss, metrics)."""
        if self.config.diamond:
            raise RuntimeError("TtfkitPolicy with a Diamond Map cannot be fine-tuned: the map was distilled for "
                               "these weights (fine-tune the plain export, then distill a new map)")
        self._require_stats()
        obs = {key: batch[feature] for feature, key in self.key_map.items()}
        return self.model.compute_loss({"obs": obs, "action": batch[ACTION]})

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Tensor], noise: Tensor | None = None,
                             generator: torch.Generator | None = None) -> Tensor:
        """Normalised observations -> normalised chunk (B, H, Da); ``noise`` (B, H, Da) fixes the
        initial sample, else it is drawn from ``generator``."""
        self._require_stats()
        obs = {}
        for feature, key in self.key_map.items():
            x = batch[feature]
            if x.ndim == len(self.config.input_features[feature].shape) + 1:  # one step (B, ...)
                x = x.unsqueeze(1).expand(-1, self.config.n_obs_steps, *x.shape[1:])
            obs[key] = x
        if self.aligned is not None:  # env units in and out; the aligner draws its own noise
            return self.aligned.plan_chunks(obs, list(range(next(iter(obs.values())).shape[0])))
        return self.model.predict_action_chunk(obs, generator=generator, noise=noise)

    @torch.no_grad()
    def select_action(self, batch: dict[str, Tensor], noise: Tensor | None = None,
                      generator: torch.Generator | None = None) -> Tensor:
        """One normalised step {feature: (B, ...)} -> one normalised action (B, Da); with alignment,
        env units in and out (ttfkit's AlignedPolicy keeps the history and the action queue)."""
        if self.aligned is not None:
            return self.aligned.select_action({key: batch[f] for f, key in self.key_map.items()})
        step = {feature: batch[feature] for feature in self.key_map}
        if not self._obs_history:
            self._obs_history.extend([step] * self.config.n_obs_steps)
        else:
            self._obs_history.append(step)
        if not self._action_queue:
            stacked = {f: torch.stack([s[f] for s in self._obs_history], dim=1) for f in step}
            chunk = self.predict_action_chunk(stacked, noise=noise, generator=generator)  # (B, H, Da)
            start = self.config.n_obs_steps - 1
            self._action_queue.extend(chunk[:, start:start + self.config.n_action_steps].unbind(dim=1))
        return self._action_queue.popleft()

    def _needs_stats(self) -> bool:
        """Whether LeRobot's processors normalise some feature of this policy (not all IDENTITY)."""
        return any(NormalizationMode(self.config.normalization_mapping.get(ft.type.value, "IDENTITY"))
                   is not NormalizationMode.IDENTITY
                   for ft in {**self.config.input_features, **self.config.output_features}.values())

    def _require_stats(self) -> None:
        """A policy that never saw statistics would be fed unnormalised inputs by LeRobot's
        processors (they pass a feature without stats through): refuse to run."""
        if self.dataset_stats is None and self._needs_stats():
            raise RuntimeError("TtfkitPolicy has no normalisation statistics: build it with "
                               "dataset_stats (LeRobot's make_policy with a dataset does) or load a "
                               "directory whose processors hold them (ttf export lerobot writes them)")


def _make_aligned(model: Any, align: dict[str, Any], critic: Any = None, diamond: Any = None) -> Any:
    """ttfkit's AlignedPolicy around ``model`` from the config's ``align`` dict (minus the stats and the
    critic): {"reward": name, "reward_options": {...}, **AlignConfig fields}; reward "critic" uses
    ``critic`` (its weights are loaded with the policy's); ``diamond``, a DiamondMap, replaces GLASS as the
    posterior sampler."""
    from ttfkit.align import make_reward
    from ttfkit.align.policy import AlignConfig, AlignedPolicy

    align = dict(align)
    if "reward" not in align:
        raise KeyError(f"TtfkitConfig.align needs a 'reward' name, got keys {sorted(align)}")
    name, options = align.pop("reward"), align.pop("reward_options", {})
    if name == "critic":
        if critic is None:
            raise KeyError("TtfkitConfig.align has reward 'critic' but no 'critic' sizes (ttf export lerobot "
                           "--reward critic --critic DIR writes them)")
        options = {**options, "critic": critic, "policy": model}
    return AlignedPolicy(model, make_reward(name, **options), AlignConfig(**align),
                         posterior="glass" if diamond is None else diamond)


def _make_diamond(model: Any, spec: dict[str, Any]) -> Any:
    """An untrained DiamondMap of the exported sizes for the flow ``model``; ``from_pretrained`` fills its weights."""
    from ttfkit.align.diamond import DiamondConfig
    from ttfkit.align.policy_diamond import build_diamond

    return build_diamond(spec["phi"], DiamondConfig(**spec["config"]), model).eval()


def _make_critic(spec: dict[str, Any]) -> Any:
    """An empty ChunkCritic of the exported sizes; ``from_pretrained`` fills its weights."""
    from ttfkit.align.critic import ChunkCritic

    critic = ChunkCritic(**spec["sizes"])
    critic.meta = dict(spec.get("meta", {}))
    return critic.eval()
