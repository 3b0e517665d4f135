"""Draw a `ttf distill` curve.csv as `ttf distill` does at its end (for runs stopped before they wrote curve.png).
Usage: python plot_curve.py CURVE_CSV OUT_PNG"""
import sys
from types import SimpleNamespace

from ttfkit.scripts.distill import _plot

rows, base = [], {}
for line in open(sys.argv[1]):
    if line.startswith("#"):  # "# glass2: t=0:0.14 t=0.3:0.15 ..."
        name, _, rest = line[2:].partition(": ")
        base[name] = {float(kv.split(":")[0][2:]): float(kv.split(":")[1]) for kv in rest.split()}
    elif not line.startswith("step"):
        step, *_, t0, t3, t6, t9 = line.strip().split(",")[:9]
        rows.append({"step": int(step), "t0": float(t0), "t0.3": float(t3), "t0.6": float(t6), "t0.9": float(t9)})
_plot(rows, SimpleNamespace(ts=sorted(base["glass2"]), baselines=base), sys.argv[2])
