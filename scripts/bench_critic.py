"""What makes a chunk critic work: held-out quality of critic variants, and agreement with the simulator.

    python -m ttfkit.scripts.bench_critic --critic runs/x_critic --checkpoint CKPT --env ID \\
        --probe-episodes 6 --out docs/results/.../critic_study.json

Part 1 (no simulator): the labelled chunks a ``ttf critic`` run saved (``rollouts.safetensors``) are split by
episode (the run's held-out fraction and seed); variants are fitted on the training episodes and scored on
the held-out ones (ROC AUC and Brier score against episode success):
ensemble size (1 vs 5), labels (success vs discounted), data volume (25/50/100% of the training episodes),
and an observation-only critic (chunks zeroed) that shows how much of the AUC comes from the state alone.

Part 2 (the question that matters for re-ranking): at states visited by the critic-aligned policy (best-of-N,
seeds from 310000, disjoint from critic and evaluation seeds), N candidate chunks are scored by the critic
and by the rollout reward (the simulator look-ahead). Reported: mean Spearman correlation within a state,
and the rollout value (P(success) of the look-ahead) of the critic's pick, of a random candidate (the base
policy) and of the rollout reward's own pick.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def _variants(data, fit_kw, gen_seed, heldout):
    from ttfkit.align.critic import critic_quality, episode_split, fit_critic

    train, held = episode_split(data["episode"], heldout, generator=torch.Generator().manual_seed(gen_seed))
    tr = {k: v[train] for k, v in data.items()}
    te = {k: v[held] for k, v in data.items()}
    ids = torch.unique(tr["episode"])
    out = []

    def run(name, d_train, d_test=te, **kw):
        t = time.perf_counter()
        critic = fit_critic(d_train, generator=torch.Generator().manual_seed(gen_seed), **{**fit_kw, **kw})
        q = critic_quality(critic, d_test)
        out.append({"variant": name, "auc": q["auc"], "brier": q["brier"], "train_chunks": len(d_train["success"]),
                    "fit_s": time.perf_counter() - t})
        print(f"  {name:<34} AUC {q['auc']:.3f}  Brier {q['brier']:.3f}", flush=True)

    run("1 member, success labels", tr, members=1)
    run("5 members, success labels", tr, members=5)
    run("5 members, discounted labels", tr, members=5, label="discounted")
    for frac in (0.25, 0.5):
        keep = torch.isin(tr["episode"], ids[: max(2, int(frac * len(ids)))])
        run(f"5 members, {int(frac * 100)}% of train episodes", {k: v[keep] for k, v in tr.items()}, members=5)
    zero = lambda d: {**d, "chunk": torch.zeros_like(d["chunk"])}  # noqa: E731
    run("5 members, observation only", zero(tr), zero(te), members=5)
    return out


def _probe(args, policy, critic_dir):
    """Critic vs rollout reward on the same candidates at the states the critic-aligned policy visits."""
    from scipy.stats import spearmanr

    from ttfkit.align.critic import CriticReward
    from ttfkit.align.policy import AlignConfig, AlignedPolicy
    from ttfkit.align.rewards import make_reward
    from ttfkit.align.rollout import RolloutTracker
    from ttfkit.envs import evaluate

    critic = CriticReward(critic_dir, policy, env_id=args.env)
    rollout = make_reward("rollout", policy=policy, env_id=args.env, horizon=args.horizon)
    records = []
    count = {"chunks": 0}

    class Probe(RolloutTracker):
        def __call__(self, x, ctx):
            rc = critic(x, ctx)
            count["chunks"] += 1
            if count["chunks"] % args.probe_every == 0:
                rr = rollout(x, ctx)
                records.append((rc.numpy().copy(), rr.numpy().copy()))
            return rc

    aligned = AlignedPolicy(policy, Probe(rollout), AlignConfig(method="best-of-n", particles=args.particles), seed_base=1)
    result = evaluate(aligned, args.env, args.probe_episodes, seed=310_000, n_envs=1, workers=0)
    rollout.close()
    rho = [spearmanr(c, r).statistic for c, r in records if np.ptp(r) > 0 and np.ptp(c) > 0]
    rng = np.random.default_rng(0)
    succ = lambda r: float(r >= 1.0)  # noqa: E731 - success bonus 1 dominates the return term (< 0.1)
    pick_critic = [succ(r[np.argmax(c)]) for c, r in records]
    pick_random = [succ(r[rng.integers(len(r))]) for c, r in records]
    pick_best = [succ(r.max()) for c, r in records]
    return {"states": len(records), "states_with_ties_dropped": len(records) - len(rho),
            "spearman_mean": float(np.mean(rho)) if rho else float("nan"),
            "lookahead_success_of_critic_pick": float(np.mean(pick_critic)),
            "lookahead_success_of_random_candidate": float(np.mean(pick_random)),
            "lookahead_success_of_rollout_pick": float(np.mean(pick_best)),
            "aligned_success": f"{result.n_successes}/{result.n_episodes}"}


def main(argv=None) -> int:
    from safetensors.torch import load_file

    import ttfkit.envs  # noqa: F401
    from ttfkit.policies import load

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--critic", required=True, help="a `ttf critic` output directory")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--probe-episodes", type=int, default=6)
    p.add_argument("--probe-every", type=int, default=3, help="probe every k-th planned chunk")
    p.add_argument("--particles", type=int, default=8)
    p.add_argument("--horizon", type=int, default=120)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    report = json.loads((Path(args.critic) / "report.json").read_text())
    data = load_file(str(Path(args.critic) / "rollouts.safetensors"))
    fit = {k: report["fit"][k] for k in ("horizon", "action_dim", "steps", "hidden", "gamma")}
    print(f"part 1: {len(data['success'])} chunks, {len(torch.unique(data['episode']))} episodes", flush=True)
    out = {"critic": args.critic, "checkpoint": args.checkpoint, "env": args.env,
           "variants": _variants(data, fit, gen_seed=0, heldout=0.25)}
    if args.probe_episodes:
        print("part 2: critic vs rollout reward on the same candidates", flush=True)
        out["probe"] = _probe(args, load(args.checkpoint).eval(), args.critic)
        print(json.dumps(out["probe"], indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
