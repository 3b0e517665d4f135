"""Tables of diamond-3's closed-loop cells (closed_loop_seed*/ next to this script, copied from
outputs/diamond3/closed_loop_seed*/), pooled over training seeds, with the base policy and align-3's best-of-8
refit-critic cells from the checkpoints' caches under outputs/ (not in git).

    python docs/results/2026-11-30/diamond-3/summarize.py > docs/results/2026-11-30/diamond-3/closed_loop.md
"""
import json
from pathlib import Path

from scipy.stats import binomtest

ROOT = Path(__file__).resolve().parents[4]
HERE = Path(__file__).resolve().parent
CELLS = [  # (label, file relative to the checkpoint or to closed_loop_seedK/)
    ("base (10 Euler steps)", "ckpt:eval.json"),
    ("best-of-8, refit critic (align-3)", "ckpt:align_extra/best-of-n-critic-refit-x8.json"),
    ("GLASS-SMC, 8 particles, 3 inner steps", "cl:smc-glass.json"),
    ("GLASS-SMC, 8 particles, 1 inner step", "cl:smc-glass-inner1.json"),
    ("Diamond-SMC, 8 particles", "cl:smc-diamond.json"),
    ("Diamond-SMC, 24 particles", "cl:smc-diamond-p24.json"),
    ("Weighted Diamond Maps, 4 candidates/step (16x)", "cl:weighted-x16.json"),
]


def load(seed: int, where: str):
    kind, rel = where.split(":")
    ckpt = ROOT / f"outputs/align/stick10/runs/adamw_lr0.001_seed{seed}/checkpoints/step_001500"
    path = (ckpt if kind == "ckpt" else HERE / f"closed_loop_seed{seed}") / rel
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    ev = data.get("eval", data)
    nfe = data.get("align", {}).get("nfe_per_chunk", 10.0)
    return sum(ev["successes"]), len(ev["successes"]), nfe


def main():
    seeds = [s for s in range(3) if (HERE / f"closed_loop_seed{s}").exists()]
    print(f"stick-pull 10 demos, evaluation seeds 100000-100049, training seeds {seeds}, refit critic reward\n")
    print("| policy | NFE / chunk | " + " | ".join(f"seed {s}" for s in seeds) + " | pooled | Wilson 95% |")
    print("|---|---|" + "---|" * len(seeds) + "---|---|")
    for label, where in CELLS:
        got = [load(s, where) for s in seeds]
        if any(g is None for g in got):
            continue
        k, n = sum(g[0] for g in got), sum(g[1] for g in got)
        ci = binomtest(k, n).proportion_ci(method="wilson")
        print(f"| {label} | {got[0][2]:.0f} | " + " | ".join(f"{g[0]}/{g[1]}" for g in got)
              + f" | {k}/{n} = {100 * k / n:.0f}% | [{100 * ci.low:.0f}, {100 * ci.high:.0f}] |")


if __name__ == "__main__":
    main()
