"""Rollout reward throughput: look-ahead worker processes vs in-process, measured in one run.

    python -m ttfkit.scripts.bench_rollout --checkpoint CKPT --env ttfkit/metaworld-stick-pull-v3 \\
        --candidates 8 --states 6 --workers 0 2

For ``--states`` states of one episode (the base policy acting, seed 310000), scores ``--candidates``
policy samples with the rollout reward (horizon ``--horizon``) for each worker count; prints simulator
steps/s and the wall-time ratio against the in-process path, and checks that every worker count gives
the same values. The machine may be shared: the header prints the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch


def main(argv=None) -> int:
    import ttfkit.envs  # noqa: F401
    from ttfkit.align.rewards import make_reward
    from ttfkit.align.search import sample_ode
    from ttfkit.envs import make_env
    from ttfkit.policies import load

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--candidates", type=int, default=8)
    p.add_argument("--states", type=int, default=6)
    p.add_argument("--horizon", type=int, default=120)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; torch {torch.__version__}")
    policy = load(args.checkpoint).eval()
    pc = policy.config
    # the states: the base policy acts from seed 310000, one state per executed chunk
    env = make_env(args.env)
    obs, _ = env.reset(seed=310_000)
    policy.reset()
    actions, chunks = [], []
    gen = torch.Generator().manual_seed(0)
    for _ in range(args.states * pc.n_action_steps):
        batch = {k: np.asarray(v)[None] for k, v in obs.items()}
        if len(actions) % pc.n_action_steps == 0:
            window = {k: policy._env_to_dataset(k, batch)[:, None].expand(-1, pc.n_obs_steps, *([-1] * (len(s))))
                      for k, s in pc.obs_shapes.items()}
            x = sample_ode(policy, args.candidates, (pc.horizon, pc.action_dim),
                           cond=policy.encode_obs(window), steps=pc.num_steps, generator=gen)
            chunks.append(policy._unnormalize(pc.action_key, x))
        a = policy.select_action(batch)[0].numpy()
        actions.append(a)
        obs, *_ = env.step(a)
    env.close()
    base, values = None, {}
    for w in args.workers:
        reward = make_reward("rollout", policy=policy, env_id=args.env, horizon=args.horizon, workers=w)
        reward.reset_slot(0, 310_000)
        t, out = 0.0, []
        for k, chunk in enumerate(chunks):
            start = time.perf_counter()
            out.append(reward(chunk, {"slot": 0}))
            t += time.perf_counter() - start
            for a in actions[k * pc.n_action_steps:(k + 1) * pc.n_action_steps]:
                reward.observe(a[None])
        reward.close()
        values[w] = torch.cat(out)
        base = base or t
        print(f"workers {w}: {reward.sim_steps / t:.0f} simulator steps/s, {t / len(chunks):.2f} s per chunk of "
              f"{args.candidates} candidates, {base / t:.2f}x the in-process rate")
    same = all(torch.equal(values[args.workers[0]], v) for v in values.values())
    print(f"identical values for every worker count: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
