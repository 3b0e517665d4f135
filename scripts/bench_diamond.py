"""Benchmark Diamond Maps: one-step policy latency and closed loop, Weighted Diamond Maps on the exact fixture.

Usage::

    python -m ttfkit.scripts.bench_diamond latency --diamond runs/pp_diamond [--repeats 50] [--threads 1]
    python -m ttfkit.scripts.bench_diamond closed-loop --diamond runs/pp_diamond --env ttfkit/metaworld-pick-place-v3 \\
        [--episodes 50] [--n-envs 10] [--flow-steps 10 1]
    python -m ttfkit.scripts.bench_diamond fixture [--particles 4 8 16] [--n 1000]

latency: chunk latency at batch 1 of the teacher flow policy (its configured ODE steps) and of the one-step
policy (one Diamond-Map call, ``ttfkit.align.one_step``), same backbone, timed in alternating blocks of --block
consecutive calls per policy in one process after a warm-up (a robot calls one policy again and again: strict
round-robin would evict each policy's weights from the cache before every call, which penalises the one-call
policy most); median and min-max wall time per call, the median CPU time of the calling thread (unaffected by
other processes taking the core; with --threads 1 all compute runs on that thread), and the ratios (also per round
of blocks, median and range, since the machine's speed drifts). Reference
cases: the teacher with one ODE step (the same network once, time inputs computed: flow-k / flow-1 bounds a
one-call sampler that folds nothing); the teacher with its step times' embeddings folded into the input layer's
bias (MLP backbone; the constant folding the one-step policy gets, given to the k-step policy too, checked equal to
it before timing), so its ratio is the speed-up that does not come from folding; and the one-step policy calling
the generic map (nothing folded). closed-loop: success of the one-step policy and of the teacher
with each of --flow-steps ODE steps on the same evaluation episodes (seeds 100000+). fixture: Weighted Diamond
Maps (exact log-density, a 16-step midpoint ODE standing in for a one-call flow map) vs best-of-N with 10 Euler
steps per candidate at equal NFE on the 2-D mixture of tests/align, energy distance to the exact tilted target.
One JSON line per measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import torch


def _teacher_with_steps(diamond_dir, steps: int):
    """A fresh copy of the map's teacher flow policy (same weights) sampling with ``steps`` ODE steps."""
    from ttfkit.align.policy_diamond import load_diamond

    teacher = load_diamond(diamond_dir)[1]
    teacher.config = dataclasses.replace(teacher.config, num_steps=steps)
    return teacher


def _unfolded_one_step(teacher, dmap):
    """The one-step policy calling the generic map (fixed inputs not folded in): what the folding saves."""
    from ttfkit.align.one_step import OneStepPolicy, one_step_sample

    class Unfolded(OneStepPolicy):
        def _sample(self, cond, noise, generator):
            return one_step_sample(self.dmap, cond, noise=noise, generator=generator)

    return Unfolded(teacher, dmap)


def _time_folded(policy):
    """``policy`` (MLP backbone) with each step time's share of the input layer, in_proj(time_mlp(emb(t))) + bias,
    computed once per time value and reused (the step times of a k-step sampler are fixed). Benchmark reference."""
    from ttfkit.policies.backbones import sinusoidal_embedding

    mlp = policy.backbone
    hd, dt = mlp.horizon * mlp.action_dim, mlp.config.time_dim
    w_x, w_t, w_c = mlp.in_proj.weight.split([hd, dt, mlp.in_proj.in_features - hd - dt], 1)
    weight = torch.cat([w_x, w_c], 1).T.contiguous()
    biases: dict[float, torch.Tensor] = {}

    def forward(x, t, cond):
        key = float(t[0])  # every row shares the step time in the samplers
        if key not in biases:
            biases[key] = mlp.in_proj.bias + w_t @ mlp.time_mlp(sinusoidal_embedding(t[:1], dt))[0]
        h = torch.addmm(biases[key], torch.cat([x.reshape(x.shape[0], -1), cond], 1), weight)
        return mlp.out_proj(mlp.trunk(h)).view_as(x)

    mlp.forward = forward
    return policy


def _latency(args) -> None:
    from ttfkit.align.one_step import OneStepPolicy
    from ttfkit.align.policy_diamond import load_diamond

    dmap, teacher = load_diamond(args.diamond)
    one = OneStepPolicy(teacher, dmap)
    cfg = teacher.config
    g = torch.Generator().manual_seed(0)
    obs = {k: torch.randn(1, cfg.n_obs_steps, *s, generator=g) for k, s in cfg.obs_shapes.items()}
    flow_k, flow_1 = f"flow-{cfg.sampler}-{cfg.num_steps}", f"flow-{cfg.sampler}-1"
    cases = {flow_k: teacher, flow_1: _teacher_with_steps(args.diamond, 1),
             "diamond-one-step": one, "diamond-one-step-unfolded": _unfolded_one_step(teacher, dmap)}
    if cfg.backbone == "mlp":
        cases[f"{flow_k}-time-folded"] = _time_folded(_teacher_with_steps(args.diamond, cfg.num_steps))
    times: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}  # this thread's CPU time: blind to descheduling
    with torch.inference_mode():
        noise = torch.randn(1, cfg.horizon, cfg.action_dim, generator=g)
        folded = {"diamond-one-step": "diamond-one-step-unfolded", f"{flow_k}-time-folded": flow_k}
        for name, ref in folded.items():  # the folded cases compute what they replace
            if name in cases and not torch.allclose(*(cases[k].predict_action_chunk(
                    obs, generator=torch.Generator().manual_seed(1), noise=noise) for k in (name, ref)), atol=1e-4):
                raise RuntimeError(f"{name} does not reproduce {ref}'s chunk")
        for _ in range(5):
            for p in cases.values():
                p.predict_action_chunk(obs, generator=g)
        for _ in range(-(-args.repeats // args.block)):
            for name, p in cases.items():
                for _ in range(args.block):
                    t0, c0 = time.perf_counter(), time.thread_time()
                    p.predict_action_chunk(obs, generator=g)
                    times[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.thread_time() - c0)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    for name, v in times.items():
        print(json.dumps({"bench": "latency", "case": name, "batch": 1, "median_ms": 1e3 * med[name],
                          "min_ms": 1e3 * min(v), "max_ms": 1e3 * max(v), "median_cpu_ms": 1e3 * med_cpu[name],
                          "repeats": args.repeats}))
    one_ms = med["diamond-one-step"]
    summary = {"bench": "latency", "speedup_one_step_vs_flow": med[flow_k] / one_ms,
               "speedup_unfolded_vs_flow": med[flow_k] / med["diamond-one-step-unfolded"],
               "speedup_of_min": min(times[flow_k]) / min(times["diamond-one-step"]),
               "speedup_cpu_time": med_cpu[flow_k] / med_cpu["diamond-one-step"],
               "ceiling_one_call_vs_flow": med[flow_k] / med[flow_1]}
    if f"{flow_k}-time-folded" in med:
        summary["speedup_one_step_vs_time_folded_flow"] = med[f"{flow_k}-time-folded"] / one_ms
    # the machine's speed drifts between rounds: the ratio of the two blocks of each round, median and range
    rounds = [statistics.median(times[flow_k][i:i + args.block]) / statistics.median(
        times["diamond-one-step"][i:i + args.block]) for i in range(0, len(times[flow_k]), args.block)]
    summary["speedup_per_round"] = {"median": statistics.median(rounds), "min": min(rounds), "max": max(rounds),
                                    "rounds": len(rounds)}
    print(json.dumps({**summary, "threads": torch.get_num_threads(), "block": args.block}))


def _closed_loop(args) -> None:
    from ttfkit.align.one_step import OneStepPolicy
    from ttfkit.align.policy_diamond import load_diamond
    from ttfkit.envs.evaluate import evaluate

    dmap, teacher = load_diamond(args.diamond)
    cases = [("diamond-one-step", OneStepPolicy(teacher, dmap))]
    for k in args.flow_steps:  # the teacher with k ODE steps (same weights)
        flow = _teacher_with_steps(args.diamond, k)
        cases.insert(0, (f"flow-{flow.config.sampler}-{k}", flow))
    for name, policy in cases:
        t0 = time.perf_counter()
        res = evaluate(policy, args.env, args.episodes, n_envs=args.n_envs, workers=0)
        print(json.dumps({"bench": "closed-loop", "case": name, "env": args.env, "episodes": res.n_episodes,
                          "successes": res.n_successes, "success_rate": res.success_rate, "ci_low": res.ci_low,
                          "ci_high": res.ci_high, "wall_s": time.perf_counter() - t0}), flush=True)


def _fixture(args) -> None:
    from ttfkit.align import best_of_n, make_reward
    from ttfkit.align.testing import GaussianMixtureFlow, energy_distance
    from ttfkit.align.weighted import weighted_diamond_sample

    mix = GaussianMixtureFlow(torch.tensor([0.3, 0.7]), torch.tensor([[-2.0, 0.0], [1.5, 1.0]]),
                              torch.tensor([0.4, 0.6]))
    center, tau = torch.tensor([-1.0, 0.5]), 0.7
    reward = make_reward("quadratic", center=center, tau=tau)
    tilt = mix.tilt(center, tau)

    def flow_map(tp, x, cond=None, steps=16):
        h = ((1 - tp) / steps).reshape(-1, 1)
        for k in range(steps):
            tk = tp + k * h[:, 0]
            v = mix.velocity(tk, x)
            x = x + h * mix.velocity(tk + h[:, 0] / 2, x + h / 2 * v)
        return x

    n = args.n
    for seed in range(args.seeds):
        g = torch.Generator().manual_seed(1000 + seed)
        base = energy_distance(mix.sample(n, generator=g), tilt.sample(n, generator=g))
        print(json.dumps({"bench": "fixture", "method": "base", "seed": seed, "energy_distance": base}))
        for m in args.particles:
            res = weighted_diamond_sample(mix, flow_map, reward, n_samples=n, shape=(2,), n_particles=m,
                                          snr_factor=args.snr, log_density=mix.marginal_log_prob, steps=10,
                                          generator=g)
            ed = energy_distance(res.samples, tilt.sample(n, generator=g))
            k = max(1, round(res.nfe_per_sample / 10))
            bon = best_of_n(mix, reward, n_candidates=k, n_samples=n, shape=(2,), steps=10, generator=g)
            ed_bon = energy_distance(bon.samples, tilt.sample(n, generator=g))
            print(json.dumps({"bench": "fixture", "seed": seed, "particles": m, "snr_factor": args.snr,
                              "nfe_per_sample": res.nfe_per_sample, "weighted_diamond": ed,
                              "best_of_n_candidates": k, "best_of_n_nfe_per_sample": bon.nfe_per_sample,
                              "best_of_n": ed_bon}), flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--diamond", required=True)
    lat.add_argument("--repeats", type=int, default=50)
    lat.add_argument("--block", type=int, default=25, help="consecutive calls per policy before switching (1: round-robin)")
    cl = sub.add_parser("closed-loop")
    cl.add_argument("--diamond", required=True)
    cl.add_argument("--env", default="ttfkit/metaworld-pick-place-v3")
    cl.add_argument("--episodes", type=int, default=50)
    cl.add_argument("--n-envs", type=int, default=10)
    cl.add_argument("--flow-steps", type=int, nargs="+", default=[10], help="teacher ODE steps to compare")
    fx = sub.add_parser("fixture")
    fx.add_argument("--particles", type=int, nargs="+", default=[4, 8, 16])
    fx.add_argument("--snr", type=float, default=1.5)
    fx.add_argument("--n", type=int, default=1000)
    fx.add_argument("--seeds", type=int, default=3)
    for p in (lat, cl, fx):
        p.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    {"latency": _latency, "closed-loop": _closed_loop, "fixture": _fixture}[args.cmd](args)


if __name__ == "__main__":
    main()
