"""DoPr step cost, before vs after (issue 18): one process, variants interleaved step by step.

Loads DoPr from a git revision (``--before REV``, run from the repository root) next to the working
tree's, trains one copy of the default flow policy per variant on the bench_optim batch, and times
``--windows`` windows of ``--window`` consecutive steps (a full refresh cycle of the default schedule:
statistics every 10 steps, inverse every 50); within a window the variants take turns step by step,
so load from other processes hits all alike. Ratios are per window, to AdamW (and Muon) of the same
window; "min-sum" ratios take, per position in the window, the fastest step over the windows and sum
them (the least disturbed estimate on a shared machine). ``--profile`` also splits DoPr's time into components (forward hooks, fold, refresh, apply)
by wrapping the module's functions with timers, per step of the window.

    python docs/results/2026-11-30/dopr-cost/compare.py --net mlp --before fdf919c --windows 20 \
        --threads 1 --out compare_mlp.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from unittest import mock

import torch

import ttfkit.optim.dopr as dopr_now
import ttfkit.optim.registry as registry
from ttfkit.optim import make_optimizer
from ttfkit.scripts.bench_optim import _env, _policy_and_batch, _step_seconds


def load_revision(rev: str) -> types.ModuleType:
    """ttfkit.optim.dopr (with its lowrank) as of git revision ``rev``, registered under other names."""
    def show(path):
        return subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=True).stdout

    modules = {}
    for name, path in (("lowrank", "optim/lowrank.py"), ("dopr", "optim/dopr.py")):
        module = types.ModuleType(f"_dopr_{rev}_{name}")
        sys.modules[module.__name__] = module  # dataclasses look their module up
        with mock.patch.dict(sys.modules, {"ttfkit.optim.lowrank": modules.get("lowrank", sys.modules["ttfkit.optim.lowrank"])}), \
                mock.patch.object(registry, "register_optimizer", lambda _name: (lambda cls: cls)):
            exec(compile(show(path), f"{rev}:{path}", "exec"), module.__dict__)
        modules[name] = module
    return modules["dopr"]


class _Timers:
    """Wraps named functions of a module (and methods of its ActivationPreconditioner) with timers."""

    FUNCTIONS = ("_accumulate", "_apply", "_apply_lowrank")
    METHODS = ("_fold_statistics", "_refresh")

    def __init__(self, module):
        self.module, self.total, self.patches = module, {}, []

    def _wrap(self, owner, name):
        original = getattr(owner, name)
        total = self.total
        total[name] = 0.0

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                total[name] += time.perf_counter() - start

        self.patches.append(mock.patch.object(owner, name, timed))

    def __enter__(self):
        self.total.clear()
        self.patches = []
        for name in self.FUNCTIONS:
            if hasattr(self.module, name):
                self._wrap(self.module, name)
        for name in self.METHODS:
            self._wrap(self.module.ActivationPreconditioner, name)
        for patch in self.patches:
            patch.start()
        return self

    def __exit__(self, *exc):
        for patch in self.patches:
            patch.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--net", default="mlp", choices=["mlp", "unet"])
    parser.add_argument("--before", default=None, help="git revision of the old DoPr (omit: current only)")
    parser.add_argument("--bases", nargs="*", default=["adamw", "muon"])
    parser.add_argument("--ranks", nargs="*", default=["64"], help="'exact' and/or cheap-AP ranks")
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--windows", type=int, default=10)
    parser.add_argument("--warmup-steps", type=int, default=None,
                        help="untimed steps first (default: one window; 1 is enough to pass DoPr's first refresh)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="time DoPr's components (adds wrapper overhead)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    impls = {"now": dopr_now}
    if args.before:
        impls[args.before] = load_revision(args.before)
    ranks = [None if r == "exact" else int(r) for r in args.ranks]
    policy, batch = _policy_and_batch(args.net, args.batch_size, device)
    builders = {base: (lambda m, b=base: make_optimizer(b, m, lr=1e-4)) for base in args.bases}
    for impl, module in impls.items():
        for base in args.bases:
            for rank in ranks:
                label = f"{impl} dopr-{base} {'exact' if rank is None else f'rank{rank}'}"
                builders[label] = lambda m, mod=module, b=base, r=rank: mod.DoPr(m, base=b, lr=1e-4, rank=r)
    runs = {}
    for label, build in builders.items():
        model = copy.deepcopy(policy)
        runs[label] = (model, build(model))
    env = _env()
    timers = {impl: _Timers(module) for impl, module in impls.items()} if args.profile else {}
    seconds = {label: [] for label in runs}
    per_step = {label: [] for label in runs}  # (windows, window) step times of the timed windows
    parts = {label: [] for label in runs}
    loads = []
    warmup = args.window if args.warmup_steps is None else args.warmup_steps
    for window in range(args.windows + 1):  # window 0: warm-up (DoPr's first refresh)
        total = dict.fromkeys(runs, 0.0)
        steps_now = {label: [] for label in runs}
        part_total = {label: {} for label in runs}
        for _ in range(args.window if window else warmup):
            for label, (model, opt) in runs.items():
                impl = label.split()[0]
                if impl in timers:
                    with timers[impl] as timer:
                        step_seconds = _step_seconds(model, opt, batch, device)
                    for k, v in timer.total.items():
                        part_total[label][k] = part_total[label].get(k, 0.0) + v
                else:
                    step_seconds = _step_seconds(model, opt, batch, device)
                total[label] += step_seconds
                steps_now[label].append(step_seconds)
        if window:
            loads.append(os.getloadavg()[0])
            for label in runs:
                seconds[label].append(total[label] / args.window)
                per_step[label].append(steps_now[label])
                parts[label].append({k: v / args.window for k, v in part_total[label].items()})
        steps = args.window if window else max(warmup, 1)
        print(f"window {window}/{args.windows} load {os.getloadavg()[0]:.1f} " +
              " ".join(f"{label}={total[label] / steps * 1e3:.1f}ms" for label in runs), flush=True)
    rows = []
    for label in runs:
        row = {"net": args.net, "variant": label, "window": args.window, "windows": args.windows, **env,
               "loadavg": os.getloadavg()[0], "loadavg_windows": loads, "seconds_median": statistics.median(seconds[label]),
               "seconds_min": min(seconds[label])}
        for base in args.bases:
            ratios = [t / b for t, b in zip(seconds[label], seconds[base])]
            q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
            row[f"ratio_{base}"] = {"median": statistics.median(ratios), "q1": q[0], "q3": q[2],
                                    "min": min(ratios), "max": max(ratios)}
        # least-disturbed estimate: per position in the window, the fastest over windows, summed
        min_sum = {lab: sum(min(col) for col in zip(*per_step[lab])) for lab in runs}
        for base in args.bases:
            row[f"min_sum_ratio_{base}"] = min_sum[label] / min_sum[base]
        if parts[label] and parts[label][0]:
            row["parts_ms_per_step"] = {k: 1e3 * statistics.median(p[k] for p in parts[label]) for k in parts[label][0]}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
    print(f"\n# {args.net}, {env['device']}, torch {env['torch']}, commit {env['commit']}, load {os.getloadavg()[0]:.1f}")
    for row in rows:
        ratio = "  ".join(f"/{b} x{row[f'ratio_{b}']['median']:.3f} [q {row[f'ratio_{b}']['q1']:.3f}-"
                          f"{row[f'ratio_{b}']['q3']:.3f}, {row[f'ratio_{b}']['min']:.3f}-{row[f'ratio_{b}']['max']:.3f}]"
                          for b in args.bases)
        extra = "  min-sum " + " ".join(f"/{b} x{row[f'min_sum_ratio_{b}']:.3f}" for b in args.bases)
        if "parts_ms_per_step" in row:
            extra += "  parts ms/step: " + " ".join(f"{k}={v:.2f}" for k, v in row["parts_ms_per_step"].items())
        print(f"{row['variant']:28s} {row['seconds_median'] * 1e3:7.1f} ms  {ratio}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
