"""Worst ratio (one Diamond call / two-step GLASS, max over the check's t) against distillation step, for the
GPU runs of this folder and the CPU run of ../diamond.  Run from the repository root:

    python docs/results/2026-11-30/diamond-2/plot_distill.py
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
RUNS = {"pick-place, CPU, batch 128 (../diamond)": HERE.parent / "diamond" / "curve.csv",
        "pick-place, GPU, batch 256 (to 1500), then 1024": HERE / "maps" / "curve_pp.csv",
        "pick-place, GPU, batch 1024 (restart at 1500)": HERE / "maps" / "curve_pp-b1024.csv",
        "peg-insert-side, GPU, batch 256, then 1024": HERE / "maps" / "curve_peg.csv",
        "button-press-topdown, GPU, batch 256, then 1024": HERE / "maps" / "curve_bp.csv"}


def worst_ratios(path: Path) -> tuple[list[int], list[float]]:
    lines = path.read_text().splitlines()
    head = lines[0].split(",")
    glass2 = next(ln for ln in lines if ln.startswith("# glass2:"))
    ref = {f"t{kv.split(':')[0][2:]}": float(kv.split(":")[1]) for kv in glass2[len("# glass2: "):].split()}
    steps, worst = [], []
    for ln in lines[1:]:
        if ln.startswith("#"):
            continue
        row = dict(zip(head, ln.split(",")))
        steps.append(int(row["step"]))
        worst.append(max(float(row[k]) / v for k, v in ref.items()))
    return steps, worst


fig, ax = plt.subplots(figsize=(7.5, 4.5))
for name, path in RUNS.items():
    s, w = worst_ratios(path)
    ax.plot(s, w, marker="o", ms=3, label=name)
    print(f"{name}: " + ", ".join(f"{a}:{b:.2f}" for a, b in zip(s, w)))
ax.axhline(2.0, color="k", ls="--", lw=1, label="target: 2x two-step GLASS")
ax.set_xlabel("distillation step")
ax.set_ylabel("worst held-out ratio to two-step GLASS")
ax.set_ylim(0, 6)
ax.legend(fontsize=7)
ax.set_title("Diamond-Map distillation of the default flow MLP (30 demos)")
fig.tight_layout()
fig.savefig(HERE / "distill_curves.png", dpi=120)
