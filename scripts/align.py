"""Closed-loop evaluation of a reward-aligned flow policy (best-of-N, SMC or guidance per action chunk).

Example:
    ttf align --policy runs/pp_flow/checkpoints/step_002000 --env ttfkit/metaworld-pick-place-v3 \\
        --method smc --reward sim --particles 8 --episodes 20 --n-envs 2
    ttf align --policy runs/pp_diamond --env ... --method smc --reward critic --critic runs/pp_critic
    ttf align --policy CKPT --env ... --method best-of-n --reward critic --fit-critic 30 --critic-out runs/critic

--policy takes a flow-policy checkpoint or a `ttf distill` directory (then its Diamond Map is the
posterior sampler of SMC/guidance; otherwise GLASS with --inner-steps). Rewards: sim (simulator
look-ahead of the executed part of each chunk on shadow copies of the evaluator's envs), critic (learned
chunk critic; --critic DIR or --fit-critic EPISODES of base-policy rollouts), or any registered analytic
reward with --reward-option KEY=JSON. Episodes use the evaluator's seeds (--seed + i). Prints success
(Wilson 95% CI), NFE per chunk and wall time; --out writes JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="flow-policy checkpoint or `ttf distill` directory")
    parser.add_argument("--env", required=True, help="env id, e.g. ttfkit/metaworld-pick-place-v3")
    parser.add_argument("--method", default="none", choices=["none", "best-of-n", "smc", "guidance"])
    parser.add_argument("--reward", default=None, help="sim | critic | goal_distance | smoothness | keep_out | ...")
    parser.add_argument("--reward-option", action="append", default=[], metavar="KEY=JSON",
                        help="keyword for the reward constructor (repeatable), e.g. success_bonus=5")
    parser.add_argument("--particles", type=int, default=8, help="N candidates / particles (default 8)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=100_000, help="first episode seed (evaluator protocol)")
    parser.add_argument("--n-envs", type=int, default=1, help="parallel envs of the evaluator (default 1)")
    parser.add_argument("--max-steps", type=int, default=None, help="episode limit (suite default)")
    parser.add_argument("--steps", type=int, default=None, help="ODE steps (default: the policy's)")
    parser.add_argument("--smc-steps", type=int, default=5)
    parser.add_argument("--value-samples", type=int, default=4)
    parser.add_argument("--inner-steps", type=int, default=4, help="GLASS inner steps (no Diamond Map)")
    parser.add_argument("--guidance-scale", type=float, default=1.0)
    parser.add_argument("--guidance-start", type=float, default=0.0)
    parser.add_argument("--critic", default=None, help="critic checkpoint directory (--reward critic)")
    parser.add_argument("--fit-critic", type=int, default=0, metavar="EPISODES",
                        help="fit the critic on this many base-policy rollouts first (seeds below --seed)")
    parser.add_argument("--critic-out", default=None, help="save the fitted critic here")
    parser.add_argument("--torch-seed", type=int, default=0, help="seed of the samplers' generator")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", default=None, help="JSON file for the result")


def main(args: argparse.Namespace) -> int:
    import torch

    import ttfkit.envs  # noqa: F401  (registers the env ids)
    from ttfkit.align.policy import AlignConfig, AlignedPolicy
    from ttfkit.align.rewards import make_reward
    from ttfkit.envs.evaluate import evaluate

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    try:
        policy, posterior = _load_policy(args.policy)
        config = AlignConfig(method=args.method, particles=args.particles, steps=args.steps,
                             smc_steps=args.smc_steps, value_samples=args.value_samples,
                             inner_steps=args.inner_steps, guidance_scale=args.guidance_scale,
                             guidance_start=args.guidance_start)
        options = dict(_parse_option(o) for o in args.reward_option)
        reward, shadow = None, None
        if args.reward == "sim":
            from ttfkit.align.sim import ShadowEnvs

            pc = policy.config
            options.setdefault("start", pc.n_obs_steps - 1)
            options.setdefault("steps", pc.n_action_steps)
            reward = make_reward("sim", **options)
            env_kwargs = {"max_episode_steps": args.max_steps} if args.max_steps else {}
            shadow = ShadowEnvs(args.env, args.n_envs, args.seed, env_kwargs=env_kwargs)
        elif args.reward == "critic":
            critic = _critic(args, policy)
            reward = make_reward("critic", critic=critic, policy=policy)
        elif args.reward is not None:
            reward = make_reward(args.reward, **options)
        aligned = AlignedPolicy(policy, reward, config, posterior=posterior, shadow=shadow,
                                generator=torch.Generator().manual_seed(args.torch_seed))
    except (KeyError, ValueError, FileNotFoundError) as err:
        print(f"ttf align: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    result = evaluate(aligned, args.env, args.episodes, seed=args.seed, n_envs=args.n_envs,
                      max_steps=args.max_steps, policy_name=f"{args.policy} [{args.method}/{args.reward}]")
    wall = time.perf_counter() - start
    summary = aligned.summary()
    print(result.table())
    print(f"  method {args.method}  reward {args.reward}  particles {args.particles}  "
          f"posterior {'diamond' if posterior != 'glass' else 'glass'}")
    print(f"  NFE per chunk {summary.get('nfe_per_chunk', 0):.0f}   wall per chunk "
          f"{summary.get('wall_s_per_chunk', 0):.3f} s   total wall {wall:.1f} s")
    if shadow is not None:
        print(f"  shadow-env mismatches {shadow.mismatches}")
        shadow.close()
    if args.out:
        out = {"eval": result.to_dict(), "align": {**summary, "config": aligned.config_dict, "wall_s": wall,
                                                     "reward": args.reward, "reward_options": options}}
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)
    return 0


def _load_policy(path):
    """(flow policy, posterior) from a policy checkpoint or a Diamond-Map directory."""
    from pathlib import Path

    from ttfkit.policies import FlowPolicy, load

    cfg = Path(path) / "config.json"
    if cfg.is_file() and json.loads(cfg.read_text()).get("kind") == "diamond_map":
        from ttfkit.align.policy_diamond import load_diamond

        dmap, teacher = load_diamond(path)
        if teacher is None:
            raise ValueError(f"{path}: Diamond-Map checkpoint without its teacher policy")
        return teacher, dmap
    policy = load(path)
    if not isinstance(policy, FlowPolicy):
        raise ValueError(f"{path} is a {type(policy).__name__}; alignment needs a flow policy")
    return policy, "glass"


def _critic(args, policy):
    import torch

    from ttfkit.align.critic import collect_critic_data, fit_critic, load_critic, save_critic

    if args.critic and not args.fit_critic:
        return load_critic(args.critic)
    if not args.fit_critic:
        raise ValueError("--reward critic needs --critic DIR or --fit-critic EPISODES")
    print(f"fitting the chunk critic on {args.fit_critic} base-policy episodes ...", flush=True)
    data = collect_critic_data(policy, args.env, args.fit_critic, seed=args.seed - 10_000 - args.fit_critic,
                               n_envs=args.n_envs, max_steps=args.max_steps)
    print(f"  {len(data['success'])} chunks, success label mean {float(data['success'].mean()):.2f}", flush=True)
    critic = fit_critic(data, horizon=policy.config.horizon, action_dim=policy.config.action_dim,
                        generator=torch.Generator().manual_seed(args.torch_seed))
    if args.critic_out:
        save_critic(critic, args.critic_out)
    return critic


def _parse_option(text: str):
    if "=" not in text:
        raise ValueError(f"--reward-option needs KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
