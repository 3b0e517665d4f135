"""Closed-loop evaluation of a reward-aligned flow policy (best-of-N, SMC, guidance or Weighted Diamond Maps per action chunk).

Example:
    ttf align --checkpoint runs/pp/checkpoints/step_001500 --env ttfkit/metaworld-pick-place-v3 \\
        --method best-of-n --reward rollout --particles 4 --episodes 50
    ttf critic --checkpoint runs/pp/checkpoints/step_001500 --env ... --episodes 200 --out runs/pp_critic
    ttf align --checkpoint runs/pp/checkpoints/step_001500 --env ... --method smc --reward critic \\
        --critic runs/pp_critic --particles 8
    ttf align --checkpoint runs/pp_diamond --env ... --method smc --reward critic --critic runs/pp_critic

--checkpoint takes a flow-policy checkpoint or a `ttf distill` directory (then its Diamond Map is the
posterior sampler of SMC/guidance; otherwise GLASS with --inner-steps). Rewards: rollout (simulator
look-ahead: the candidate chunk, then the base policy with --rollout-flow-steps for --horizon steps;
--lookahead-workers processes), critic (a chunk critic fitted by `ttf critic`; deployable), sim (look-ahead over
the chunk's executed steps only), or any registered analytic reward with --reward-option KEY=JSON.
Episodes use the evaluator's seeds (--episode-seed + i). Prints success (Wilson 95% CI), NFE and
simulator steps per chunk and wall time per episode; --out writes JSON.

A checkpoint that reads images gets them as ``ttf eval`` renders them (``ttfkit.scripts.image_options``):
at its own image size, from the camera its training store recorded (--image-size/--camera override);
the evaluated env, the look-ahead envs of the rollout and sim rewards (and their worker processes) all
render the same, and a critic fitted on other images is refused.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from ttfkit.scripts.config_file import add_config_argument
from ttfkit.scripts.device import add_device_argument, resolve_device
from ttfkit.scripts.image_options import add_image_arguments, image_options
from ttfkit.scripts.options import deprecated_alias

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    checkpoint = parser.add_argument("--checkpoint", metavar="PATH", required=True,
                                     help="flow-policy checkpoint or `ttf distill` directory")
    deprecated_alias(parser, "--policy", checkpoint)
    parser.add_argument("--env", required=True, help="env id, e.g. ttfkit/metaworld-pick-place-v3")
    parser.add_argument("--method", default="none", choices=["none", "best-of-n", "smc", "guidance", "weighted"])
    parser.add_argument("--reward", default=None,
                        help="rollout | critic | sim | goal_distance | smoothness | keep_out | ...")
    parser.add_argument("--reward-option", action="append", default=[], metavar="KEY=JSON",
                        help="keyword for the reward constructor (repeatable), e.g. success_bonus=5")
    parser.add_argument("--particles", type=int, default=8, help="N candidates / particles")
    parser.add_argument("--episodes", type=int, default=10)
    seed = parser.add_argument("--episode-seed", type=int, default=100_000,
                               help="first episode seed (evaluator protocol)")
    deprecated_alias(parser, "--seed", seed)
    parser.add_argument("--n-envs", type=int, default=1, help="parallel envs of the evaluator")
    parser.add_argument("--max-steps", type=int, default=None, help="episode limit (suite default)")
    parser.add_argument("--n-action-steps", type=int, default=None, metavar="N",
                        help="actions executed per chunk before re-planning (default: the checkpoint's)")
    parser.add_argument("--steps", type=int, default=None, help="ODE steps (default: the policy's)")
    parser.add_argument("--smc-steps", type=int, default=5)
    parser.add_argument("--value-samples", type=int, default=4)
    parser.add_argument("--inner-steps", type=int, default=4, help="GLASS inner steps (no Diamond Map)")
    parser.add_argument("--guidance-scale", type=float, default=1.0)
    parser.add_argument("--guidance-start", type=float, default=0.0)
    parser.add_argument("--snr-factor", type=float, default=4.0,
                        help="weighted: signal-to-noise divisor of the renoising (> 1)")
    parser.add_argument("--flow-map-steps", type=int, default=2,
                        help="weighted: Euler steps of the flow map that jumps candidates to t = 1")
    parser.add_argument("--critic", default=None, help="critic checkpoint directory (--reward critic)")
    parser.add_argument("--critic-scale", type=float, default=1.0, help="inverse temperature of the critic reward")
    parser.add_argument("--horizon", type=int, default=120, help="rollout reward: look-ahead steps after the chunk")
    parser.add_argument("--rollout-flow-steps", type=int, default=2, help="rollout reward: continuation's flow steps")
    workers = parser.add_argument("--lookahead-workers", type=int, default=0,
                                  help="rollout reward: look-ahead worker processes (0: in-process)")
    deprecated_alias(parser, "--workers", workers)
    add_image_arguments(parser)
    parser.add_argument("--torch-seed", type=int, default=0, help="seed of the samplers' generator")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    add_device_argument(parser, what="the policy and its samplers")
    parser.add_argument("--out", default=None, help="JSON file for the result")
    add_config_argument(parser)


def main(args: argparse.Namespace) -> int:
    import torch

    import ttfkit.envs  # noqa: F401  (registers the env ids)
    from ttfkit.align.policy import AlignConfig, AlignedPolicy
    from ttfkit.align.rewards import make_reward
    from ttfkit.envs.evaluate import evaluate

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    try:
        policy, posterior = _load_policy(args.checkpoint, resolve_device(args.device))
        if args.n_action_steps is not None:
            policy.set_action_steps(args.n_action_steps)
        env_kwargs = image_options(policy.config.obs_shapes, image_size=args.image_size, camera=args.camera,
                                   checkpoint=args.checkpoint)
        config = AlignConfig(method=args.method, particles=args.particles, steps=args.steps,
                             smc_steps=args.smc_steps, value_samples=args.value_samples,
                             inner_steps=args.inner_steps, guidance_scale=args.guidance_scale,
                             guidance_start=args.guidance_start, snr_factor=args.snr_factor,
                             flow_map_steps=args.flow_map_steps)
        options = dict(_parse_option(o) for o in args.reward_option)
        reward, shadow = build_reward(args.reward, policy, args.env, options, n_envs=args.n_envs,
                                      max_steps=args.max_steps, env_kwargs=env_kwargs, critic=args.critic,
                                      critic_scale=args.critic_scale,
                                      horizon=args.horizon, flow_steps=args.rollout_flow_steps,
                                      workers=args.lookahead_workers)
        aligned = AlignedPolicy(policy, reward, config, posterior=posterior, shadow=shadow,
                                generator=torch.Generator().manual_seed(args.torch_seed), seed_base=args.torch_seed)
    except (KeyError, ValueError, FileNotFoundError) as err:
        print(f"ttf align: error: {err}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    start = time.perf_counter()
    with tqdm(total=args.episodes, desc=f"align {args.method}/{args.reward}", unit="ep") as bar:
        try:
            result = evaluate(aligned, args.env, args.episodes, seed=args.episode_seed, n_envs=args.n_envs,
                              max_steps=args.max_steps, env_kwargs=env_kwargs,
                              policy_name=f"{args.checkpoint} [{args.method}/{args.reward}]",
                              on_episode=lambda n, ok: bar.update(1))
        finally:
            if hasattr(reward, "close"):
                reward.close()
    wall = time.perf_counter() - start
    summary = aligned.summary()
    print(result.table())
    print(f"  method {args.method}  reward {args.reward}  particles {args.particles}  "
          f"posterior {'diamond' if posterior != 'glass' else 'glass'}")
    print(f"  NFE per chunk {summary.get('nfe_per_chunk', 0):.0f}   sim steps per chunk "
          f"{summary.get('sim_steps_per_chunk', 0):.0f}   wall per chunk {summary.get('wall_s_per_chunk', 0):.3f} s"
          f"   wall per episode {wall / args.episodes:.1f} s")
    tracker = shadow if shadow is not None else reward
    if hasattr(tracker, "mismatches"):
        print(f"  shadow-env mismatches {tracker.mismatches}")
    if shadow is not None:
        shadow.close()
    if args.out:
        out = {"eval": result.to_dict(), "align": {**summary, "config": aligned.config_dict, "wall_s": wall,
                                                     "wall_s_per_episode": wall / args.episodes,
                                                     "reward": args.reward, "reward_options": options}}
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)
    return 0


def _load_policy(path, device="cpu"):
    """(flow policy, posterior) from a policy checkpoint or a Diamond-Map directory."""
    from pathlib import Path

    from ttfkit.policies import FlowPolicy, load

    cfg = Path(path) / "config.json"
    if cfg.is_file() and json.loads(cfg.read_text()).get("kind") == "diamond_map":
        from ttfkit.align.policy_diamond import load_diamond

        dmap, teacher = load_diamond(path, device=device)
        if teacher is None:
            raise ValueError(f"{path}: Diamond-Map checkpoint without its teacher policy")
        return teacher, dmap
    policy = load(path, device=device)
    if not isinstance(policy, FlowPolicy):
        raise ValueError(f"{path} is a {type(policy).__name__}; alignment needs a flow policy")
    return policy, "glass"


def build_reward(name, policy, env_id, options, *, n_envs=1, max_steps=None, env_kwargs=None, critic=None,
                 critic_scale=1.0, horizon=120, flow_steps=2, workers=0):
    """(reward, shadow envs or None) for ``ttf align`` / ``ttf gap --align``: ``rollout`` (simulator
    look-ahead with base-policy continuation), ``critic`` (a ``ttf critic`` directory), ``sim`` (the
    chunk-only look-ahead), or any registered analytic reward with ``options``. ``env_kwargs``: the
    evaluated env's options (a pixel policy's image options), given to every look-ahead env too and
    checked against a critic's."""
    from ttfkit.align.rewards import make_reward

    evaluated = dict(env_kwargs or {})
    env_kwargs = {**evaluated, **({"max_episode_steps": max_steps} if max_steps else {})}
    pc = policy.config
    if name == "sim":
        from ttfkit.align.sim import ShadowEnvs

        options = {"start": pc.n_obs_steps - 1, "steps": pc.n_action_steps, **options}
        return make_reward("sim", **options), ShadowEnvs(env_id, n_envs, env_kwargs=env_kwargs)
    if name == "rollout":
        options = {"horizon": horizon, "flow_steps": flow_steps, "workers": workers, **options}
        return make_reward("rollout", policy=policy, env_id=env_id, n_envs=n_envs, env_kwargs=env_kwargs,
                           **options), None
    if name == "critic":
        if not critic:
            raise ValueError("--reward critic needs --critic DIR (fit one with `ttf critic`)")
        return make_reward("critic", critic=critic, policy=policy, scale=critic_scale, env_id=env_id,
                           env_kwargs=evaluated), None
    return (make_reward(name, **options) if name is not None else None), None


def _parse_option(text: str):
    if "=" not in text:
        raise ValueError(f"--reward-option needs KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
