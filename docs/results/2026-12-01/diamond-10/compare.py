"""Run from this folder. Max ratio to two-step GLASS (over the checked t) against wall minutes, batch 256 (diamond-8) vs 128 (here), on the
button-press-topdown teacher, same check draw. Minutes per step are taken as uniform over each run: 256 reached its
step-14000 check at 28.7 min (diamond-8 README), 128 ended at step 18000 in 23.9 min (`bpt_distill.log`).
Usage: python compare.py OUT_PNG"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def curve(path):
    rows = [r for r in csv.reader(open(path)) if r and not r[0].startswith("#")]
    head, body = rows[0], rows[1:]
    cols = [head.index(f"t{t}") for t in ("0", "0.3", "0.6", "0.9")]
    glass2 = {}
    for line in open(path):
        if line.startswith("# glass2:"):
            glass2 = [float(kv.split(":")[1]) for kv in line.split(": ", 1)[1].split()]
    return [(int(r[0]), max(float(r[c]) / g for c, g in zip(cols, glass2))) for r in body]


fig, ax = plt.subplots(figsize=(6.5, 4))
for path, label, min_per_step in (("../diamond-8/bpt_curve.csv", "batch 256 (default)", 28.7 / 14000),
                                  ("bpt_curve.csv", "batch 128", 23.9 / 18000)):
    pts = curve(path)
    ax.plot([s * min_per_step for s, _ in pts], [r for _, r in pts], marker="o", label=label)
    print(label, [(s, round(r, 2)) for s, r in pts])
ax.axhline(2.0, color="k", ls="--", lw=1, label="target: 2x two-step GLASS")
ax.axvline(30, color="grey", ls=":", lw=1)
ax.set_xlabel("minutes (2 threads, estimated from steps)")
ax.set_ylabel("max over t of distance / two-step GLASS")
ax.set_title("button-press-topdown teacher, held-out check (seed 0)", fontsize=10)
ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[1], dpi=120)
