"""Worst ratio to two-step GLASS (max over the checked t) against distillation step: the EMA map and the trained map
of the same runs (curves/stick*_ema*.csv, copied from the `ttf distill` output directories), with diamond-3's
16000-step run without EMA for reference.

    python docs/results/2026-11-30/diamond-4/plot_ema.py     # writes ema_vs_trained.png beside this script
"""
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
TS = ("0", "0.3", "0.6", "0.9")


def read(path: Path):
    lines = path.read_text().splitlines()
    glass2 = {}
    for line in lines:
        if line.startswith("# glass2:"):
            glass2 = {kv.split(":")[0][2:]: float(kv.split(":")[1]) for kv in line.split()[2:]}
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))

    def worst(prefix):
        pts = [(int(r["step"]), max(float(r[f"{prefix}t{t}"]) / glass2[t] for t in TS))
               for r in rows if r.get(f"{prefix}t0")]
        return [p[0] for p in pts], [p[1] for p in pts]

    return worst(""), worst("trained_")


fig, ax = plt.subplots(figsize=(7, 4.5))
for i, name in enumerate(sorted(p.stem for p in (HERE / "curves").glob("stick*.csv"))):
    (s, r), (st, rt) = read(HERE / "curves" / f"{name}.csv")
    ax.plot(s, r, color=f"C{i}", marker="o", label=f"{name}: EMA 0.999 (checked, saved)")
    ax.plot(st, rt, color=f"C{i}", ls="--", label=f"{name}: trained weights")
ref = HERE.parent / "diamond-3" / "curves" / "stick1_b256_16000.csv"
(s, r), _ = read(ref)
ax.plot(s, r, color="grey", ls=":", label="diamond-3 stick1, 16000 steps, no EMA")
ax.axhline(2.0, color="k", lw=0.8)
ax.set_xlabel("distillation step (batch 256, lr 3e-4: cosine to 0, or constant for *const*)")
ax.set_ylabel("worst ratio to 2-step GLASS (t = 0, 0.3, 0.6, 0.9)")
ax.set_title("held-out one-call posterior, stick-pull 10-demo policies")
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(HERE / "ema_vs_trained.png", dpi=120)
