"""AlignedPolicy: a flow policy whose action chunks are reward-aligned at inference time.

Wraps a ``FlowPolicy`` and keeps its interface (``reset()``, ``select_action(obs) -> (B, Da)``), so
``ttfkit.envs.evaluate`` drives it like any policy. Every new chunk is produced per env by one of:

- "none": the plain flow ODE (``steps`` NFE);
- "best-of-n": the best of ``particles`` ODE samples under the reward;
- "smc": twisted SMC with ``particles`` particles (GLASS or Diamond-Map transitions);
- "guidance": the Doob-guided ODE with ∇V̂ from reparameterised posterior samples (differentiable reward).

Rewards see chunks in env (unnormalised) units, (N, H, Da), index 0 = the oldest observation step, and
a context dict: ``{"obs": {key: (To, ...) dataset units}, "env_obs": {key: env-unit array of this env},
"cond": (1, Dc), "env_index": b}`` plus ``"sim_env"`` when simulator shadows are attached
(:class:`ttfkit.align.sim.ShadowEnvs`, kept in lockstep with the evaluator).

During ``select_action`` the wrapped policy's ``predict_action_chunk`` is routed through the aligner
(restored afterwards); the policy's observation history and action queue are used as they are.
Per-chunk statistics (NFE, wall time, reward of the chosen chunk) accumulate in ``stats``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from ttfkit.align.guidance import PosteriorValueGrad, guided_sample
from ttfkit.align.nfe import NFECounter
from ttfkit.align.result import AlignResult
from ttfkit.align.search import best_of_n, sample_ode
from ttfkit.align.smc import smc

__all__ = ["AlignConfig", "AlignedPolicy", "METHODS"]

logger = logging.getLogger(__name__)

METHODS = ("none", "best-of-n", "smc", "guidance")


@dataclass(frozen=True)
class AlignConfig:
    """Inference-time alignment settings.

    Args:
        method: one of ``METHODS``.
        particles: N, candidates (best-of-N) or particles (SMC).
        steps: ODE steps for "none"/"best-of-n"/"guidance" (None: the policy's num_steps).
        smc_steps: SMC transitions from t = 0 to 1.
        value_samples: M posterior samples per value estimate (SMC, guidance).
        inner_steps: GLASS inner steps per transition / posterior sample (ignored with a Diamond Map).
        ess_threshold: SMC resampling threshold (fraction of N).
        guidance_scale: factor on the guidance drift.
        guidance_start: guidance is off for t < guidance_start ("resample early, guide late").
    """

    method: str = "none"
    particles: int = 8
    steps: int | None = None
    smc_steps: int = 5
    value_samples: int = 4
    inner_steps: int = 4
    ess_threshold: float = 0.5
    guidance_scale: float = 1.0
    guidance_start: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method=}")
        if self.particles < 1 or self.smc_steps < 1 or self.value_samples < 1 or self.inner_steps < 1:
            raise ValueError(f"particles, smc_steps, value_samples, inner_steps must be >= 1, got {self}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1 or None, got {self.steps=}")
        if not 0.0 <= self.guidance_start < 1.0:
            raise ValueError(f"guidance_start must be in [0, 1), got {self.guidance_start=}")


class AlignedPolicy:
    """Reward-aligned wrapper of a flow policy (see module docstring).

    Args:
        policy: a ``FlowPolicy`` (``encode_obs``, ``velocity``, normaliser).
        reward: ``reward(chunk (N, H, Da) env units, context) -> (N,)``; may be None for "none".
        config: :class:`AlignConfig`.
        posterior: "glass" or a DiamondMap distilled from ``policy``.
        shadow: optional :class:`~ttfkit.align.sim.ShadowEnvs` (needed by the "sim" reward).
        generator: randomness of every sampler.
    """

    def __init__(self, policy, reward, config: AlignConfig, *, posterior="glass", shadow=None,
                 generator: torch.Generator | None = None) -> None:
        if config.method != "none" and reward is None:
            raise ValueError(f"method {config.method!r} needs a reward")
        if config.method == "guidance" and getattr(reward, "differentiable", True) is False:
            raise ValueError(f"guidance needs a differentiable reward; {type(reward).__name__} is not")
        self.policy, self.reward, self.config = policy, reward, config
        self.posterior, self.shadow, self.generator = posterior, shadow, generator
        self.stats: list[dict] = []
        self._env_obs: dict[str, np.ndarray] | None = None

    @property
    def config_dict(self) -> dict:
        return asdict(self.config)

    def reset(self) -> None:
        self.policy.reset()
        if self.shadow is not None:
            self.shadow.reset()

    def select_action(self, obs: dict[str, np.ndarray]) -> Tensor:
        """One env step batched over envs (env units) -> actions (B, Da); see the policy interface."""
        self._env_obs = obs
        if self.shadow is not None:
            self.shadow.check(obs)
        # route the policy's chunk prediction through the aligner for this call only
        had = vars(self.policy).get("predict_action_chunk")
        self.policy.predict_action_chunk = self._predict_aligned
        try:
            action = self.policy.select_action(obs)
        finally:
            if had is None:
                vars(self.policy).pop("predict_action_chunk", None)
            else:
                self.policy.predict_action_chunk = had
        if self.shadow is not None:
            self.shadow.step(action.detach().cpu().numpy())
        return action

    def summary(self) -> dict:
        """Mean NFE, wall time and reward per chunk over ``stats``."""
        if not self.stats:
            return {"chunks": 0}
        return {"chunks": len(self.stats),
                "nfe_per_chunk": float(np.mean([s["nfe"] for s in self.stats])),
                "wall_s_per_chunk": float(np.mean([s["wall_s"] for s in self.stats])),
                "reward_mean": float(np.mean([s["reward"] for s in self.stats]))}

    @torch.no_grad()
    def _predict_aligned(self, obs_batch: dict[str, Tensor], generator=None, noise=None) -> Tensor:
        pol, cfg = self.policy, self.policy.config
        cond = pol.encode_obs(obs_batch)  # (B, Dc)
        chunks = []
        for b in range(cond.shape[0]):
            t0 = time.perf_counter()
            ctx = self._context(obs_batch, cond, b)
            res = self._align_one(cond[b:b + 1], ctx)
            chunks.append(res.samples[0])
            self.stats.append({"nfe": res.nfe, "wall_s": time.perf_counter() - t0,
                               "reward": float(res.rewards[0]) if res.rewards.numel() else 0.0,
                               "n_distinct": res.n_distinct})
        x = torch.stack(chunks)  # (B, H, Da) normalised
        return pol._unnormalize(cfg.action_key, x)

    def _align_one(self, cond: Tensor, ctx: dict) -> AlignResult:
        cfg, pcfg = self.config, self.policy.config
        shape = (pcfg.horizon, pcfg.action_dim)
        steps = cfg.steps or getattr(pcfg, "num_steps", 10)
        kw = dict(shape=shape, cond=cond, reward_context=ctx, generator=self.generator, dtype=cond.dtype,
                  device=cond.device)
        reward = self._normalised_reward
        if cfg.method == "none":
            counter_model = NFECounter(self.policy)
            x = sample_ode(counter_model, 1, shape, cond=cond, steps=steps, generator=self.generator,
                           dtype=cond.dtype, device=cond.device)
            r = reward(x, ctx) if self.reward is not None else torch.zeros(1)
            return AlignResult(samples=x, nfe=counter_model.evals, rewards=r, n_distinct=1)
        if cfg.method == "best-of-n":
            return best_of_n(self.policy, reward, n_candidates=cfg.particles, n_samples=1, steps=steps, **kw)
        if cfg.method == "smc":
            return smc(self.policy, reward, n_particles=cfg.particles, n_steps=cfg.smc_steps, n_samples=1,
                       posterior=self.posterior, value_samples=cfg.value_samples, inner_steps=cfg.inner_steps,
                       ess_threshold=cfg.ess_threshold, **kw)
        vg = PosteriorValueGrad(self.policy, reward, posterior=self.posterior, value_samples=cfg.value_samples,
                                inner_steps=cfg.inner_steps, reward_context=ctx, generator=self.generator)
        start, scale = cfg.guidance_start, cfg.guidance_scale
        return guided_sample(self.policy, vg, n_samples=1, steps=steps, reward=reward,
                             scale=lambda t: scale if t >= start else 0.0, **kw)

    def _normalised_reward(self, x: Tensor, ctx) -> Tensor:
        key = self.policy.config.action_key
        return self.reward(self.policy._unnormalize(key, x), ctx).to(x.dtype)

    def _context(self, obs_batch: dict[str, Tensor], cond: Tensor, b: int) -> dict:
        ctx = {"obs": {k: v[b] for k, v in obs_batch.items()}, "cond": cond[b:b + 1], "env_index": b}
        if self._env_obs is not None:
            ctx["env_obs"] = {k: np.asarray(v)[b] for k, v in self._env_obs.items()}
            ctx.update({k: torch.as_tensor(np.asarray(v)[b]) for k, v in self._env_obs.items()})
        if self.shadow is not None:
            ctx["sim_env"] = self.shadow.envs[b]
        return ctx
