"""Median and range over the rounds of latency_ab.sh's log, per variant (before / after): ms per chunk for each case
and the speed-up ratios.   Usage: python summarize.py latency_ab_idle.log"""

import json
import statistics
import sys
from collections import defaultdict

cases, ratios = defaultdict(list), defaultdict(list)
for line in open(sys.argv[1]):
    tag, _, payload = line.partition(": ")
    variant, row = tag.split()[0], json.loads(payload)
    if "case" in row:
        cases[variant, row["case"]].append(row["median_ms"])
    else:
        for k, v in row.items():
            if k.startswith(("speedup", "ceiling")):
                ratios[variant, k].append(v)


def fmt(v, unit=""):
    return f"{statistics.median(v):.2f}{unit} [{min(v):.2f}, {max(v):.2f}]"


for variant in ("before", "after"):
    print(f"## {variant} ({len(ratios[variant, 'speedup_one_step_vs_flow'])} runs)")
    for (v, name), ms in cases.items():
        if v == variant:
            print(f"  {name:32s} {fmt(ms, ' ms')}")
    for (v, name), r in ratios.items():
        if v == variant:
            print(f"  {name:40s} {fmt(r, 'x')}")
