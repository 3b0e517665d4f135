"""ttfkit.policies: flow-matching and diffusion policies on action chunks, their backbones and trainer.

- ``make_policy(name, normalizer=None, **config)`` / ``list_policies()``: registry ("flow", "diffusion").
- ``load(path)`` / ``policy.save(path)``: checkpoint directories (JSON + safetensors, no pickle).
- ``TrainConfig`` / ``train(config)``: the training loop behind ``ttf train``.
"""

from ttfkit.policies.checkpoint import load
from ttfkit.policies.diffusion import DiffusionConfig, DiffusionPolicy
from ttfkit.policies.flow import FlowConfig, FlowPolicy
from ttfkit.policies.registry import list_policies, make_policy, register_policy

__all__ = ["make_policy", "list_policies", "register_policy", "load", "FlowPolicy", "FlowConfig",
           "DiffusionPolicy", "DiffusionConfig", "TrainConfig", "train"]


def __getattr__(name):  # the trainer pulls in ttfkit.data and ttfkit.optim; import it on demand
    if name in ("TrainConfig", "train"):
        from ttfkit.policies import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'ttfkit.policies' has no attribute {name!r}")
