"""Benchmark: chunk latency of the exported one-step policy against the exported 10-step flow policy in LeRobot.

Usage::

    python -m ttfkit.scripts.bench_export_diamond run --diamond runs/pp_diamond [--repeats 200] [--threads 1] \\
        [--out latency.jsonl]
    python -m ttfkit.scripts.bench_export_diamond plot latency.jsonl --out latency.png
    python -m ttfkit.scripts.bench_export_diamond closed-loop --diamond runs/pp_diamond \
        --env ttfkit/metaworld-pick-place-v3 [--episodes 20] [--out closed_loop.jsonl]

run: exports the ``ttf distill`` directory's teacher twice with ``ttf export lerobot`` (plain: its configured ODE
steps; ``--diamond``: the one-step policy, one map call per chunk) into a temporary folder, loads both with
LeRobot's ``from_pretrained`` and times one chunk at batch 1 through LeRobot's path (preprocessor ->
``predict_action_chunk`` -> postprocessor). Timed in the same rounds for reference: ttfkit's own policies (teacher,
``OneStepPolicy``) and the pieces (``encode_obs``, one teacher velocity call, one map call) on one block of
``ChunkPolicy.block_rows`` rows, the unit ``predict_action_chunk`` computes even at batch 1. The cases run
round-robin after ``--warmup`` rounds on fixed random observations, so load changes hit every case alike; the
per-round ratio flow / one-step is reported besides the medians. Before timing, the exported one-step chunk is
checked equal to ttfkit's for the same noise and generator. Prints a header (device, versions, git commit) and one
JSON line per case (median, quartiles, min, max in ms, and every time), then the ratios. plot: box plot of a run's
times (log scale). closed-loop: both exports in LeRobot's own rollout loop (``evaluate_in_lerobot``, one episode
per seed from 100000, terminated at success, noise from a generator seeded with the episode's seed) and ttfkit's
teacher and ``OneStepPolicy`` in ttfkit's evaluator on the same seeds (whose per-episode generators are seeded the
same way), so each export's episodes must equal ttfkit's; prints success counts and the per-episode agreement.
Needs ``make lerobot``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="time the exports")
    run.add_argument("--diamond", required=True, help="`ttf distill` directory (its teacher/ is the flow policy)")
    run.add_argument("--repeats", type=int, default=200, help="timed rounds")
    run.add_argument("--warmup", type=int, default=10, help="untimed rounds first")
    run.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    run.add_argument("--seed", type=int, default=0, help="seed of the observations and the sampling noise")
    run.add_argument("--out", default=None, help="also write the JSON lines to this file")
    plot = sub.add_parser("plot", help="box plot of a run's JSON lines")
    plot.add_argument("jsonl")
    plot.add_argument("--out", required=True, help="PNG to write")
    loop = sub.add_parser("closed-loop", help="success of both exports in LeRobot's rollout vs ttfkit's evaluator")
    loop.add_argument("--diamond", required=True, help="`ttf distill` directory")
    loop.add_argument("--env", required=True, help="ttfkit env id")
    loop.add_argument("--episodes", type=int, default=20, help="episodes, seeds 100000 upward")
    loop.add_argument("--max-steps", type=int, default=None, help="episode limit (the suite's by default)")
    loop.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    loop.add_argument("--out", default=None, help="also write the JSON lines to this file")
    args = parser.parse_args(argv)
    if args.cmd == "plot":
        return _plot(args)
    if args.cmd == "closed-loop":
        if args.episodes < 1:
            parser.error(f"--episodes must be >= 1, got {args.episodes}")
        return _closed_loop(args)
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        parser.error(f"need --repeats >= 1, --warmup >= 0, --threads >= 1, got {args.repeats}, {args.warmup}, "
                     f"{args.threads}")
    return _run(args)


def _run(args) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    import lerobot
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    from lerobot_policy_ttfkit.export_ttfkit import export_ttfkit_policy

    from ttfkit.align.one_step import OneStepPolicy, one_step_sample
    from ttfkit.align.policy_diamond import load_diamond
    from ttfkit.scripts.bench_vs_lerobot import _git_commit

    diamond = Path(args.diamond)
    dmap, teacher = load_diamond(diamond)
    one_step = OneStepPolicy(teacher, dmap)
    cfg = teacher.config
    cases = {}
    with tempfile.TemporaryDirectory() as tmp:
        exports = {f"lerobot-flow-{cfg.sampler}-{cfg.num_steps}": export_ttfkit_policy(diamond / "teacher",
                                                                                       Path(tmp) / "flow"),
                   "lerobot-one-step": export_ttfkit_policy(diamond / "teacher", Path(tmp) / "one", diamond=diamond)}
        for name, path in exports.items():
            policy = get_policy_class("ttfkit").from_pretrained(path).eval()
            pre, post = make_pre_post_processors(policy.config, pretrained_path=str(path))
            cases[name] = (policy, pre, post)
    features = {f: ft.shape for f, ft in cases["lerobot-one-step"][0].config.input_features.items()}
    keys = cases["lerobot-one-step"][0].key_map
    gen = torch.Generator().manual_seed(args.seed)
    batch = {f: torch.randn(1, cfg.n_obs_steps, *shape, generator=gen) for f, shape in features.items()}
    obs = {keys[f]: v for f, v in batch.items()}  # ttfkit's keys, same tensors
    _check_parity(cases["lerobot-one-step"], one_step, batch, obs, cfg, args.seed)

    def lerobot_chunk(policy, pre, post):
        return lambda g: post(policy.predict_action_chunk(pre(dict(batch)), generator=g))

    calls = {name: lerobot_chunk(*case) for name, case in cases.items()}
    calls[f"ttfkit-flow-{cfg.sampler}-{cfg.num_steps}"] = lambda g: teacher.predict_action_chunk(obs, generator=g)
    calls["ttfkit-one-step"] = lambda g: one_step.predict_action_chunk(obs, generator=g)
    # the pieces (one block of ChunkPolicy.block_rows rows, as predict_action_chunk computes even at batch 1)
    rows = {k: v.expand(teacher.block_rows, *v.shape[1:]) for k, v in obs.items()}
    cond = teacher.encode_obs(rows)
    x = torch.randn(teacher.block_rows, cfg.horizon, cfg.action_dim, generator=gen)
    t = torch.full((teacher.block_rows,), 0.5)
    calls["piece: encode_obs"] = lambda g: teacher.encode_obs(rows)
    calls["piece: teacher velocity"] = lambda g: teacher.velocity(t, x, cond)
    calls["piece: map call (one_step_sample)"] = lambda g: one_step_sample(dmap, cond, noise=x, generator=g)
    times = {name: [] for name in calls}
    g = torch.Generator().manual_seed(args.seed)
    with torch.inference_mode():
        for r in range(args.warmup + args.repeats):
            for name, call in calls.items():
                t0 = time.perf_counter()
                call(g)
                if r >= args.warmup:
                    times[name].append(1e3 * (time.perf_counter() - t0))

    lines = [{"bench": "export-diamond", "device": "cpu", "cpus": os.cpu_count(), "threads": args.threads,
              "torch": torch.__version__, "lerobot": lerobot.__version__, "commit": _git_commit(),
              "diamond": str(diamond), "batch": 1, "repeats": args.repeats, "warmup": args.warmup,
              "load_avg_1min": os.getloadavg()[0]}]
    for name, ts in times.items():
        q1, med, q3 = statistics.quantiles(ts, n=4) if len(ts) > 1 else (ts[0],) * 3
        lines.append({"case": name, "median_ms": med, "q1_ms": q1, "q3_ms": q3, "min_ms": min(ts), "max_ms": max(ts),
                      "times_ms": ts})
    flow = f"flow-{cfg.sampler}-{cfg.num_steps}"
    for side in ("lerobot", "ttfkit"):
        ratios = [a / b for a, b in zip(times[f"{side}-{flow}"], times[f"{side}-one-step"])]
        q1, med, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
        lines.append({"ratio": f"{side}: {flow} / one-step", "median_of_round_ratios": med, "q1": q1, "q3": q3,
                      "ratio_of_medians": statistics.median(times[f"{side}-{flow}"])
                      / statistics.median(times[f"{side}-one-step"])})
    lines.append({"ratio": "lerobot export / ttfkit, one-step (export overhead)",
                  "ratio_of_medians": statistics.median(times["lerobot-one-step"])
                  / statistics.median(times["ttfkit-one-step"])})
    text = "\n".join(json.dumps(line) for line in lines)
    print("\n".join(json.dumps({k: v for k, v in line.items() if k != "times_ms"}) for line in lines))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


def _closed_loop(args) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    from lerobot_policy_ttfkit.export_ttfkit import export_ttfkit_policy
    from lerobot_policy_ttfkit.rollout_ttfkit import evaluate_in_lerobot

    from ttfkit.align.one_step import OneStepPolicy
    from ttfkit.align.policy_diamond import load_diamond
    from ttfkit.envs import evaluate

    diamond = Path(args.diamond)
    dmap, teacher = load_diamond(diamond)
    seeds = list(range(100_000, 100_000 + args.episodes))
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        exports = {f"flow-{teacher.config.sampler}-{teacher.config.num_steps}": (
                       export_ttfkit_policy(diamond / "teacher", Path(tmp) / "flow"), teacher),
                   "one-step": (export_ttfkit_policy(diamond / "teacher", Path(tmp) / "one", diamond=diamond),
                                OneStepPolicy(teacher, dmap))}
        for name, (path, ours) in exports.items():
            t0 = time.perf_counter()
            theirs = [evaluate_in_lerobot(path, args.env, [seed], max_steps=args.max_steps,
                                          generator=torch.Generator().manual_seed(seed)) for seed in seeds]
            t1 = time.perf_counter()
            mine = evaluate(ours, args.env, args.episodes, seed=seeds[0], n_envs=1, workers=0,
                            max_steps=args.max_steps)
            t2 = time.perf_counter()
            lr = {"success": [r.success[0] for r in theirs], "lengths": [r.lengths[0] for r in theirs],
                  "returns": [r.returns[0] for r in theirs]}
            same = [a == b and la == lb for a, b, la, lb in zip(lr["success"], mine.successes, lr["lengths"],
                                                               mine.lengths)]
            line = {"bench": "export-diamond closed-loop", "case": name, "env": args.env, "episodes": args.episodes,
                    "seeds": [seeds[0], seeds[-1]], "lerobot_successes": sum(lr["success"]),
                    "ttfkit_successes": sum(mine.successes), "episodes_identical": sum(same),
                    "max_return_diff": max(abs(a - b) for a, b in zip(lr["returns"], mine.returns)),
                    "lerobot_wall_s": t1 - t0, "ttfkit_wall_s": t2 - t1, "lerobot_lengths": lr["lengths"],
                    "ttfkit_lengths": list(mine.lengths), "lerobot_returns": lr["returns"]}
            print(json.dumps(line), flush=True)
            lines.append(line)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("".join(json.dumps(line) + "\n" for line in lines))
    return 0


def _check_parity(case, one_step, batch, obs, cfg, seed: int) -> None:
    """The exported one-step chunk equals ttfkit's OneStepPolicy's for the same noise and generator."""
    policy, pre, post = case
    noise = torch.randn(1, cfg.horizon, cfg.action_dim, generator=torch.Generator().manual_seed(seed + 1))
    with torch.inference_mode():
        got = post(policy.predict_action_chunk(pre(dict(batch)), noise=noise,
                                               generator=torch.Generator().manual_seed(seed + 2)))
        want = one_step.predict_action_chunk(obs, noise=noise, generator=torch.Generator().manual_seed(seed + 2))
    if not torch.equal(got, want):
        raise RuntimeError(f"exported one-step chunk differs from ttfkit's by {float((got - want).abs().max())}")


def _plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [json.loads(line) for line in Path(args.jsonl).read_text().splitlines() if line.strip()]
    cases = [line for line in lines if "times_ms" in line]
    if not cases:
        raise SystemExit(f"{args.jsonl}: no per-case times (a `run --out` file has lines with times_ms)")
    head = lines[0]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.boxplot([c["times_ms"] for c in cases], orientation="horizontal", whis=(5, 95), showfliers=False)
    ax.set_yticks(range(1, len(cases) + 1), [c["case"] for c in cases])
    ax.set_xscale("log")
    ax.set_xlabel("chunk latency, batch 1 (ms; box: quartiles, whiskers: 5-95%)")
    load = head.get("load_avg_1min", 0)
    ax.set_title(f"{head.get('repeats')} rounds, {head.get('threads')} thread(s), load {load:.1f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
