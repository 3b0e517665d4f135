"""Pooled success per setting and alignment variant from the cached evaluations (run from the repo root):
    python docs/results/2026-11-30/align-2/summary.py outputs/align docs/results/2026-11-30/align-2
Reads CKPT/eval.json (base) and CKPT/align{,_extra}/<method>-<reward>-x<N>.json for the final checkpoint
of every training seed; writes summary.md (per-seed counts, pooled rate, Wilson 95% interval) and
summary.png."""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ttfkit.envs.evaluate import wilson_interval  # noqa: E402

VARIANTS = [  # (label, file stem or "base")
    ("base", "base"),
    ("critic best-of-8", "best-of-n-critic-x8"),
    ("critic best-of-8 (re-run, block encoding)", "best-of-n-critic-blocks-x8"),
    ("critic on 200 base episodes (control), best-of-8", "best-of-n-critic-base200-x8"),
    ("critic refit once, best-of-8", "best-of-n-critic-refit-x8"),
    ("critic refit twice, best-of-8", "best-of-n-critic-refit2-x8"),
    ("rollout best-of-4 (simulator)", "best-of-n-rollout-x4"),
    ("rollout SMC 4 particles (simulator)", "smc-rollout-x4"),
]
SETTINGS = {"stick10": "stick-pull, 10 demos", "shelf10": "shelf-place, 10 demos",
            "peg5": "peg-insert-side, 5 demos"}


def counts(ckpt: Path, stem: str):
    if stem == "base":
        ev = json.loads((ckpt / "eval.json").read_text())
        return int(sum(ev["successes"][:50])), 50
    for folder in ("align", "align_extra"):
        f = ckpt / folder / f"{stem}.json"
        if f.exists():
            d = json.loads(f.read_text())
            return int(sum(d["eval"]["successes"][:50])), 50
    return None


def main(root: Path, out: Path) -> None:
    lines = ["| setting | variant | seed 0 | seed 1 | seed 2 | pooled | Wilson 95% |", "|---|---|---|---|---|---|---|"]
    fig, axes = plt.subplots(1, len(SETTINGS), figsize=(6.5 * len(SETTINGS), 4.5))
    for ax, (setting, title) in zip(axes, SETTINGS.items()):
        labels, rates, errs = [], [], []
        for label, stem in VARIANTS:
            per_seed = [counts(root / setting / "runs" / f"adamw_lr0.001_seed{s}" / "checkpoints" / "step_001500", stem)
                        for s in range(3)]
            done = [c for c in per_seed if c is not None]
            if not done:
                continue
            k, n = sum(c[0] for c in done), sum(c[1] for c in done)
            lo, hi = wilson_interval(k, n)
            cells = [f"{c[0]}/{c[1]}" if c else "–" for c in per_seed]
            lines.append(f"| {title} | {label} | {' | '.join(cells)} | {k}/{n} = {100 * k / n:.0f}% "
                         f"| [{100 * lo:.0f}, {100 * hi:.0f}] |")
            labels.append(f"{label}\n({len(done)} seed{'s' if len(done) > 1 else ''})")
            rates.append(k / n)
            errs.append((k / n - lo, hi - k / n))
        ax.barh(range(len(labels)), rates, xerr=list(zip(*errs)), color="tab:blue", alpha=0.7, capsize=3)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("success (pooled episodes, Wilson 95%)")
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out / "summary.png", dpi=120)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
