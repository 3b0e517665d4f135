"""AlignedPolicy: a flow policy whose action chunks are reward-aligned at inference time.

Wraps a ``FlowPolicy`` and keeps its interface (``reset()``, ``select_action(obs) -> (B, Da)``), so
``ttfkit.envs.evaluate`` drives it like any policy. Every new chunk is produced per env by one of:

- "none": the plain flow ODE (``steps`` NFE);
- "best-of-n": the best of ``particles`` ODE samples under the reward;
- "smc": twisted SMC with ``particles`` particles (GLASS or Diamond-Map transitions);
- "guidance": the Doob-guided ODE with ∇V̂ from reparameterised posterior samples (differentiable reward);
- "weighted": Weighted Diamond Maps, the guided ODE with ∇V̂ from ``particles`` renoised candidates per step, each
  jumped to t = 1 by a flow map (the policy's ODE in ``flow_map_steps`` Euler steps) and importance-weighted
  (:mod:`ttfkit.align.weighted`; differentiable reward).

Rewards see chunks in env (unnormalised) units, (N, H, Da), index 0 = the oldest observation step, and
a context dict: ``{"obs": {key: (To, ...) dataset units}, "env_obs": {key: env-unit array of this env},
"cond": (1, Dc), "slot": j}`` plus ``"sim_env"`` when simulator shadows are attached
(:class:`ttfkit.align.sim.ShadowEnvs`, kept in step with the evaluator), and after a slot's first chunk
``"prev_chunk"`` (its last chosen chunk, env units), ``"chunk_shift"`` (n_action_steps) and ``"obs_steps"``
(To), which the ``coherence`` reward reads. A reward that returns NaN or
inf is an error naming the candidates.

Evaluator protocol: ``reset_slot(j, seed)`` per episode (forwarded to the policy, the shadows and a
simulator-tracking reward such as ``rollout``), then ``select_action(obs)`` on all slots. During
``select_action`` the wrapped policy's chunk planning (``plan_chunks``) is routed through
:meth:`AlignedPolicy.plan_chunks` (restored afterwards). Each episode's sampling noise comes from a generator seeded by its episode seed.
Per-chunk statistics (NFE, simulator steps, wall time, reward of the chosen chunk) accumulate in ``stats``.
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
from ttfkit.align.smc import FINAL_SELECTIONS, smc
from ttfkit.align.weighted import WeightedDiamondValueGrad, ode_flow_map

__all__ = ["AlignConfig", "AlignedPolicy", "METHODS"]

logger = logging.getLogger(__name__)

METHODS = ("none", "best-of-n", "smc", "guidance", "weighted")


@dataclass(frozen=True)
class AlignConfig:
    """Inference-time alignment settings.

    Args:
        method: one of ``METHODS``.
        particles: N, candidates (best-of-N), particles (SMC) or renoised candidates per guided step (weighted).
        steps: ODE steps for "none"/"best-of-n"/"guidance"/"weighted" (None: the policy's num_steps).
        smc_steps: SMC transitions from t = 0 to 1.
        value_samples: M posterior samples per value estimate (SMC, guidance).
        inner_steps: GLASS inner steps per transition / posterior sample (ignored with a Diamond Map).
        ess_threshold: SMC resampling threshold (fraction of N).
        smc_final: "sample" (the chunk is drawn from SMC's final weights) or "max" (the final particle with
            the highest reward, as best-of-N picks; see :func:`ttfkit.align.smc.smc`).
        guidance_scale: factor on the guidance drift.
        guidance_start: guidance is off for t < guidance_start ("resample early, guide late").
        snr_factor: weighted: how much signal-to-noise the renoising removes (> 1).
        flow_map_steps: weighted: Euler steps of the flow map that jumps each renoised candidate to t = 1.
    """

    method: str = "none"
    particles: int = 8
    steps: int | None = None
    smc_steps: int = 5
    value_samples: int = 4
    inner_steps: int = 4
    ess_threshold: float = 0.5
    smc_final: str = "sample"
    guidance_scale: float = 1.0
    guidance_start: float = 0.0
    snr_factor: float = 4.0
    flow_map_steps: int = 2

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method=}")
        if self.particles < 1 or self.smc_steps < 1 or self.value_samples < 1 or self.inner_steps < 1:
            raise ValueError(f"particles, smc_steps, value_samples, inner_steps must be >= 1, got {self}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1 or None, got {self.steps=}")
        if not 0.0 <= self.guidance_start < 1.0:
            raise ValueError(f"guidance_start must be in [0, 1), got {self.guidance_start=}")
        if not self.snr_factor > 1.0 or self.flow_map_steps < 1:
            raise ValueError(f"need snr_factor > 1 and flow_map_steps >= 1, got {self.snr_factor=}, "
                             f"{self.flow_map_steps=}")
        if self.smc_final not in FINAL_SELECTIONS:
            raise ValueError(f"smc_final must be one of {FINAL_SELECTIONS}, got {self.smc_final=!r}")


class AlignedPolicy:
    """Reward-aligned wrapper of a flow policy (see module docstring).

    Args:
        policy: a ``FlowPolicy`` (``encode_obs``, ``velocity``, normaliser).
        reward: ``reward(chunk (N, H, Da) env units, context) -> (N,)``; may be None for "none".
            A reward that tracks the simulator (``rollout``) also gets the evaluator protocol's calls
            ``reset_slot(j, seed)``, ``check(obs)`` and ``observe(actions)`` when it has them.
        config: :class:`AlignConfig`.
        posterior: "glass" or a DiamondMap distilled from ``policy``.
        shadow: optional :class:`~ttfkit.align.sim.ShadowEnvs` (needed by the "sim" reward).
        generator: randomness of every sampler when no episode seed is known; with the evaluator's
            ``reset_slot(j, seed)`` each episode draws from its own generator seeded by (``seed_base``,
            episode seed), so an episode's outcome does not depend on the evaluator's slot layout.
        seed_base: mixed into the per-episode seeds.
    """

    def __init__(self, policy, reward, config: AlignConfig, *, posterior="glass", shadow=None,
                 generator: torch.Generator | None = None, seed_base: int = 0) -> None:
        if config.method != "none" and reward is None:
            raise ValueError(f"method {config.method!r} needs a reward")
        if config.method in ("guidance", "weighted") and getattr(reward, "differentiable", True) is False:
            raise ValueError(f"{config.method} needs a differentiable reward; {type(reward).__name__} is not")
        self.policy, self.reward, self.config = policy, reward, config
        self.posterior, self.shadow, self.generator = posterior, shadow, generator
        self.seed_base = seed_base
        self.stats: list[dict] = []
        self._env_obs: dict[str, np.ndarray] | None = None
        self._slot_gens: dict[int, torch.Generator] = {}
        self._prev_chunk: dict[int, Tensor] = {}  # slot -> its last chosen chunk (env units), for coherence

    @property
    def config_dict(self) -> dict:
        return asdict(self.config)

    def reset(self) -> None:
        """Start an evaluation (evaluator protocol); each episode then starts with :meth:`reset_slot`."""
        self.policy.reset()
        self._prev_chunk.clear()

    def reset_slot(self, j: int, seed: int) -> None:
        """Slot ``j`` starts an episode with reset seed ``seed`` (evaluator protocol)."""
        self.policy.reset_slot(j, seed=seed)
        device = next(self.policy.parameters()).device  # samplers draw their noise on the policy's device
        self._slot_gens[j] = torch.Generator(device=device).manual_seed((self.seed_base << 32) + seed)
        self._prev_chunk.pop(j, None)
        if self.shadow is not None:
            self.shadow.reset_slot(j, seed)
        if hasattr(self.reward, "reset_slot"):
            self.reward.reset_slot(j, seed)

    def select_action(self, obs: dict[str, np.ndarray]) -> Tensor:
        """One env step batched over the evaluator's slots (env units) -> actions (B, Da)."""
        self._env_obs = obs
        if self.shadow is not None:
            self.shadow.check(obs)
        if hasattr(self.reward, "check"):
            self.reward.check(obs)
        # route the policy's chunk planning through the aligner for this call only
        had = vars(self.policy).get("plan_chunks")
        self.policy.plan_chunks = self.plan_chunks
        try:
            action = self.policy.select_action(obs)
        finally:
            if had is None:
                vars(self.policy).pop("plan_chunks", None)
            else:
                self.policy.plan_chunks = had
        executed = action.detach().cpu().numpy()
        if self.shadow is not None:
            self.shadow.step(executed)
        if hasattr(self.reward, "observe"):
            self.reward.observe(executed)
        return action

    def summary(self) -> dict:
        """Mean NFE, simulator steps, wall time and reward per chunk over ``stats``."""
        if not self.stats:
            return {"chunks": 0}
        return {"chunks": len(self.stats),
                "nfe_per_chunk": float(np.mean([s["nfe"] for s in self.stats])),
                "sim_steps_per_chunk": float(np.mean([s["sim_steps"] for s in self.stats])),
                "wall_s_per_chunk": float(np.mean([s["wall_s"] for s in self.stats])),
                "reward_mean": float(np.mean([s["reward"] for s in self.stats]))}

    @torch.no_grad()
    def plan_chunks(self, obs_batch: dict[str, Tensor], slots: list[int]) -> Tensor:
        """Aligned chunks for the rows of ``obs_batch`` ({key: (b, To, ...)} dataset units), row i
        belonging to evaluator slot ``slots[i]`` -> (b, H, Da) in dataset units.

        This is the public entry point (the evaluator's policy hook, and what the LeRobot plugin calls).
        """
        pol, cfg = self.policy, self.policy.config
        cond = pol.encode_obs_blocks(obs_batch)  # (b, Dc), independent of how many slots plan at once
        chunks = []
        for b, slot in enumerate(slots):
            t0 = time.perf_counter()
            sim0 = getattr(self.reward, "sim_steps", 0)
            ctx = self._context(obs_batch, cond, b, slot)
            gen = self._slot_gens.get(slot, self.generator)
            res = self._align_one(cond[b:b + 1], ctx, gen)
            chunks.append(res.samples[0])
            self.stats.append({"nfe": res.nfe, "wall_s": time.perf_counter() - t0,
                               "sim_steps": getattr(self.reward, "sim_steps", 0) - sim0,
                               "reward": float(res.rewards[0]) if res.rewards.numel() else 0.0,
                               "n_distinct": res.n_distinct})
        actions = pol._unnormalize(cfg.action_key, torch.stack(chunks))  # (b, H, Da)
        self._prev_chunk.update(zip(slots, actions.clone()))  # a copy: callers may edit what they get
        return actions

    def _align_one(self, cond: Tensor, ctx: dict, generator: torch.Generator | None) -> AlignResult:
        cfg, pcfg = self.config, self.policy.config
        shape = (pcfg.horizon, pcfg.action_dim)
        steps = cfg.steps or getattr(pcfg, "num_steps", 10)
        kw = dict(shape=shape, cond=cond, reward_context=ctx, generator=generator, dtype=cond.dtype,
                  device=cond.device)
        reward = self._normalised_reward
        if cfg.method == "none":
            counter_model = NFECounter(self.policy)
            x = sample_ode(counter_model, 1, shape, cond=cond, steps=steps, generator=generator,
                           dtype=cond.dtype, device=cond.device)
            # the reward is not evaluated: "none" is the base policy, and some rewards cost simulator steps
            return AlignResult(samples=x, nfe=counter_model.evals, rewards=torch.zeros(1), n_distinct=1)
        if cfg.method == "best-of-n":
            return best_of_n(self.policy, reward, n_candidates=cfg.particles, n_samples=1, steps=steps, **kw)
        if cfg.method == "smc":
            return smc(self.policy, reward, n_particles=cfg.particles, n_steps=cfg.smc_steps, n_samples=1,
                       posterior=self.posterior, value_samples=cfg.value_samples, inner_steps=cfg.inner_steps,
                       ess_threshold=cfg.ess_threshold, final=cfg.smc_final, **kw)
        if cfg.method == "weighted":
            vg = WeightedDiamondValueGrad(self.policy, ode_flow_map(self.policy, cfg.flow_map_steps), reward,
                                          n_particles=cfg.particles, snr_factor=cfg.snr_factor, reward_context=ctx,
                                          generator=generator, flow_map_nfe=cfg.flow_map_steps)
        else:
            vg = PosteriorValueGrad(self.policy, reward, posterior=self.posterior, value_samples=cfg.value_samples,
                                    inner_steps=cfg.inner_steps, reward_context=ctx, generator=generator)
        start, scale = cfg.guidance_start, cfg.guidance_scale
        return guided_sample(self.policy, vg, n_samples=1, steps=steps, solver="euler", reward=reward,
                             scale=lambda t: scale if t >= start else 0.0, **kw)

    def _normalised_reward(self, x: Tensor, ctx) -> Tensor:
        key = self.policy.config.action_key
        r = self.reward(self.policy._unnormalize(key, x), ctx)
        if r.shape != (x.shape[0],):
            raise ValueError(f"reward {type(self.reward).__name__} returned shape {tuple(r.shape)} for "
                             f"{x.shape[0]} chunks; expected ({x.shape[0]},)")
        if not torch.isfinite(r).all():
            bad = (~torch.isfinite(r)).nonzero()[:, 0].tolist()
            raise ValueError(f"reward {type(self.reward).__name__} returned non-finite values "
                             f"{r[bad].tolist()} for candidates {bad} (slot {ctx.get('slot')})")
        return r.to(x.dtype)

    def _context(self, obs_batch: dict[str, Tensor], cond: Tensor, b: int, slot: int) -> dict:
        ctx = {"obs": {k: v[b] for k, v in obs_batch.items()}, "cond": cond[b:b + 1], "env_index": slot,
               "slot": slot}
        if self._env_obs is not None:
            ctx["env_obs"] = {k: np.asarray(v)[slot] for k, v in self._env_obs.items()}
            ctx.update({k: torch.as_tensor(np.asarray(v)[slot]) for k, v in self._env_obs.items()})
        if self.shadow is not None:
            ctx["sim_env"] = self.shadow.envs[slot]
        if slot in self._prev_chunk:
            pcfg = self.policy.config
            ctx.update(prev_chunk=self._prev_chunk[slot], chunk_shift=pcfg.n_action_steps,
                       obs_steps=pcfg.n_obs_steps)
        return ctx
