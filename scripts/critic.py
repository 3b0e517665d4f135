"""Fit a chunk critic (the deployable alignment reward) on the base policy's own rollouts.

Example:
    ttf critic --checkpoint runs/pp/checkpoints/step_001500 --env ttfkit/metaworld-pick-place-v3 \\
        --episodes 200 --out runs/pp_critic
    ttf critic ... --refit-episodes 100 --refit-particles 8     # refit once on the aligned policy's rollouts

Rolls the policy out on seeds reserved for critics (``--episode-seed``, default 300000: disjoint from
demo seeds 0.. and evaluation seeds 100000..), labels every planned chunk by its episode's outcome,
fits the critic on the episodes outside a held-out fraction and reports its held-out quality (ROC AUC
and Brier score against episode success) with a calibration plot; then refits on all episodes and
saves. Writes OUT/{config.json, model.safetensors} (load with ``ttfkit.align.critic.load_critic``),
OUT/report.json, OUT/calibration.png and OUT/rollouts.safetensors (the labelled chunks; ``--data``
reuses them instead of rolling out again). With ``--refit-episodes`` the critic-aligned policy
(best-of-N with this critic) is rolled out on further reserved seeds, its chunks are added, and the
critic is refitted once.

A checkpoint that reads images is rolled out as ``ttf eval`` renders them (``ttfkit.scripts.image_options``:
its image size, its training store's camera; --image-size/--camera override), look-ahead labels and the
refit's rollouts included. The critic's observation features are the policy's encoder output (images
through the policy's own vision encoder), so it stores no images; it records the image options and the
policy's observation shapes, and ``ttf align --reward critic`` refuses it on other images.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ttfkit.scripts.config_file import add_config_argument
from ttfkit.scripts.device import add_device_argument, resolve_device
from ttfkit.scripts.image_options import add_image_arguments, image_options
from ttfkit.scripts.options import deprecated_alias

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    checkpoint = parser.add_argument("--checkpoint", metavar="PATH", required=True,
                                     help="flow-policy checkpoint directory")
    deprecated_alias(parser, "--policy", checkpoint)
    parser.add_argument("--env", required=True, help="env id the policy is evaluated on")
    parser.add_argument("--out", required=True, help="critic directory to write")
    parser.add_argument("--episodes", type=int, default=200, help="base-policy rollouts (default 200)")
    parser.add_argument("--episode-seed", type=int, default=300_000, help="first rollout seed (default 300000)")
    parser.add_argument("--data", default=None, help="rollouts.safetensors of an earlier run (skips the rollouts)")
    parser.add_argument("--heldout", type=float, default=0.25, help="fraction of episodes held out (default 0.25)")
    parser.add_argument("--members", type=int, default=5, help="ensemble members (default 5)")
    parser.add_argument("--label", default="success", choices=["success", "discounted"])
    parser.add_argument("--gamma", type=float, default=0.99, help="per-step discount of --label discounted")
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps per member (default 1000)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lookahead-episodes", type=int, default=0,
                        help="episodes (seeds from --episode-seed + 20000) whose states get simulator-labelled "
                             "candidate chunks (training-time only; the critic stays deployable)")
    parser.add_argument("--lookahead-candidates", type=int, default=4, help="candidates labelled per state")
    parser.add_argument("--horizon", type=int, default=120, help="look-ahead steps after a candidate chunk")
    parser.add_argument("--refit-episodes", type=int, default=0, help="aligned-policy rollouts for one refit")
    parser.add_argument("--refit-particles", type=int, default=8, help="best-of-N of the refit rollouts")
    parser.add_argument("--n-envs", type=int, default=1, help="evaluator slots (default 1)")
    parser.add_argument("--max-steps", type=int, default=None, help="episode limit (default: the suite's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fit and of the split (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    add_image_arguments(parser)
    add_device_argument(parser, what="the policy's rollouts (the critic is fitted on the CPU)")
    add_config_argument(parser)


def main(args: argparse.Namespace, env_kwargs: dict | None = None) -> int:
    """``ttf critic``; ``env_kwargs`` (``ttf gap --align``: the study's env options) replaces the image
    options resolved from the checkpoint and the flags."""
    import torch

    from ttfkit.align import critic as C

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("episodes", "members", "steps", "hidden", "n_envs", "threads"):
        if getattr(args, name) < 1:
            raise SystemExit(f"ttf critic: error: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not 0.0 < args.heldout < 1.0:
        raise SystemExit(f"ttf critic: error: --heldout must be in (0, 1), got {args.heldout}")
    torch.set_num_threads(args.threads)
    policy = _load_flow(args.checkpoint, resolve_device(args.device))
    if env_kwargs is None:
        env_kwargs = image_options(policy.config.obs_shapes, image_size=args.image_size, camera=args.camera,
                                   checkpoint=args.checkpoint)
    env_kwargs = dict(env_kwargs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.data:
        data = _load_data(args.data)
    else:
        data = C.collect_critic_data(policy, args.env, args.episodes, seed=args.episode_seed, n_envs=args.n_envs,
                                     max_steps=args.max_steps, env_kwargs=env_kwargs, progress=True)
        data.pop("result")
    print(f"{len(data['success'])} chunks from {len(torch.unique(data['episode']))} episodes, "
          f"episode success rate {_episode_rate(data):.2f}")
    lookahead = None
    if args.lookahead_episodes:
        lookahead = C.collect_lookahead_data(policy, args.env, args.lookahead_episodes,
                                             seed=args.episode_seed + 20_000, candidates=args.lookahead_candidates,
                                             horizon=args.horizon, max_steps=args.max_steps, env_kwargs=env_kwargs,
                                             progress=True)
        sim_steps = int(lookahead.pop("sim_steps"))
        print(f"{len(lookahead['success'])} look-ahead-labelled chunks ({sim_steps} simulator steps), "
              f"look-ahead success {float(lookahead['success'].mean()):.2f}")
    fit = dict(horizon=policy.config.horizon, action_dim=policy.config.action_dim, steps=args.steps,
               hidden=args.hidden, members=args.members, label=args.label, gamma=args.gamma)
    gen = torch.Generator().manual_seed(args.seed)
    train, held = C.episode_split(data["episode"], args.heldout, generator=gen)
    if not held.any() or not train.any():
        n = len(torch.unique(data["episode"]))
        raise SystemExit(f"ttf critic: error: --heldout {args.heldout} of {n} episodes leaves "
                         f"{'no held-out' if not held.any() else 'no training'} episode; roll out more episodes")
    train_data = _rows(data, train) if lookahead is None else _cat(_rows(data, train), lookahead)
    quality = C.critic_quality(C.fit_critic(train_data, generator=gen, **fit), _rows(data, held))
    print(f"held-out ({quality['n_episodes']} episodes): AUC {quality['auc']:.3f}  Brier {quality['brier']:.3f}")
    if lookahead is not None:  # episode outcomes and look-ahead labels both estimate P(success | state, chunk)
        data = _cat(data, lookahead)
    critic = C.fit_critic(data, generator=gen, **fit)
    report = {"checkpoint": args.checkpoint, "env_id": args.env, "env_kwargs": env_kwargs, "fit": fit,
              "heldout": quality,
              "lookahead_chunks": 0 if lookahead is None else len(lookahead["success"])}
    if args.refit_episodes:
        report["refit"] = _refit(args, policy, critic, data, fit, gen, env_kwargs)
        data = report["refit"].pop("data")
        critic = C.fit_critic(data, generator=gen, **fit)
    critic.meta.update(env_id=args.env, env_kwargs=env_kwargs, policy=str(args.checkpoint),
                       policy_fingerprint=C.policy_fingerprint(policy),
                       obs_shapes={k: list(v) for k, v in policy.config.obs_shapes.items()},
                       label=args.label, episodes=int(len(torch.unique(data["episode"]))))
    C.save_critic(critic, out)
    _save_data(data, out / "rollouts.safetensors")
    (out / "report.json").write_text(json.dumps(report, indent=2))
    _plot_calibration(quality, out / "calibration.png", title=f"{args.env} held-out")
    print(f"wrote {out} (report.json, calibration.png)")
    return 0


def _refit(args, policy, critic, data, fit, gen, env_kwargs) -> dict:
    """Roll out the critic-aligned policy on further reserved seeds, add its chunks, report its success."""
    import torch

    from ttfkit.align import critic as C
    from ttfkit.align.policy import AlignConfig, AlignedPolicy

    critic.meta.update(policy_fingerprint=C.policy_fingerprint(policy), env_id=args.env)
    aligned = AlignedPolicy(policy, C.CriticReward(critic, policy, env_id=args.env, env_kwargs=env_kwargs),
                            AlignConfig(method="best-of-n", particles=args.refit_particles), seed_base=args.seed)
    seed = args.episode_seed + args.episodes
    more = C.collect_critic_data(policy, args.env, args.refit_episodes, seed=seed, n_envs=args.n_envs,
                                 max_steps=args.max_steps, env_kwargs=env_kwargs, rollout_policy=aligned,
                                 progress=True)
    result = more.pop("result")
    merged = _cat(data, more)
    print(f"aligned rollouts for the refit: success {result.n_successes}/{result.n_episodes}")
    return {"episodes": args.refit_episodes, "first_seed": seed, "particles": args.refit_particles,
            "aligned_success_rate": result.success_rate, "data": merged}


def _load_flow(path, device="cpu"):
    from ttfkit.policies import FlowPolicy, load

    policy = load(path, device=device)
    if not isinstance(policy, FlowPolicy):
        raise SystemExit(f"ttf critic: error: {path} is a {type(policy).__name__}; the critic needs a flow policy")
    return policy.eval()


def _cat(a: dict, b: dict) -> dict:
    import torch

    return {k: torch.cat([a[k], b[k]]) for k in a}


def _rows(data: dict, mask) -> dict:
    return {k: v[mask] for k, v in data.items()}


def _episode_rate(data: dict) -> float:
    outcome = dict(zip(data["episode"].tolist(), data["success"].tolist()))
    return sum(outcome.values()) / len(outcome)


def _save_data(data: dict, path: Path) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.contiguous() for k, v in data.items()}, str(tmp))
    tmp.replace(path)


def _load_data(path) -> dict:
    from safetensors.torch import load_file

    try:
        data = load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise SystemExit(f"ttf critic: error: cannot read {path}: {err}") from err
    missing = {"cond", "chunk", "episode", "step", "success", "length"} - set(data)
    if missing:
        raise SystemExit(f"ttf critic: error: {path} lacks {sorted(missing)}")
    return data


def _plot_calibration(quality: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cal = quality["calibration"]
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.scatter([c["predicted"] for c in cal], [c["observed"] for c in cal], s=[10 + c["n"] / 5 for c in cal])
    ax.set(xlabel="predicted P(success)", ylabel="observed success rate", xlim=(0, 1), ylim=(0, 1),
           title=f"{title}\nAUC {quality['auc']:.2f}  Brier {quality['brier']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
