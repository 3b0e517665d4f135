"""Median and range over the runs of latency_ab.sh's log, per variant (before / after): ms per chunk for each case,
the speed-up ratios (per-round ratios: the median of each run's rounds) and how many runs reach 8x.
Usage: python summarize.py latency_ab.log"""

import json
import statistics
import sys
from collections import defaultdict

cases, ratios = defaultdict(list), defaultdict(list)
for line in open(sys.argv[1]):
    tag, _, payload = line.partition(": ")
    if not payload.startswith("{"):
        continue  # the bit-identity check's lines
    variant, row = tag.split()[0], json.loads(payload)
    if "case" in row:
        cases[variant, row["case"]].append(row["median_ms"])
    else:
        for k, v in row.items():
            if k.startswith(("speedup", "ceiling")):
                ratios[variant, k].append(v["median"] if isinstance(v, dict) else v)


def fmt(v, unit=""):
    return f"{statistics.median(v):.2f}{unit} [{min(v):.2f}, {max(v):.2f}]"


for variant in ("before", "after"):
    main = ratios[variant, "speedup_one_step_vs_flow"]
    if not main:
        continue  # a log of one variant only (latency_runs.sh)
    print(f"## {variant} ({len(main)} runs; {sum(r >= 8 for r in main)} with one-step vs flow >= 8x)")
    for (v, name), ms in cases.items():
        if v == variant:
            print(f"  {name:32s} {fmt(ms, ' ms')}")
    for (v, name), r in ratios.items():
        if v == variant:
            print(f"  {name:40s} {fmt(r, 'x')}")
