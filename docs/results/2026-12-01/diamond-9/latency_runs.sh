#!/usr/bin/env bash
# Issue 13: more `bench_diamond latency` runs of this commit's code alone (no A/B swapping), on one idle core, batch 1,
# --threads 1, 300 calls per policy in blocks of 25, to pin down the median of the one-step speed-up.
# Usage: latency_runs.sh MAP RUNS > log   (summarize.py reads it as variant "after")
set -euo pipefail
cd "$(dirname "$0")/../../../.."
for r in $(seq "$2"); do
  taskset -c 0 .venv/bin/python -m ttfkit.scripts.bench_diamond latency --diamond "$1" --repeats 300 --threads 1 \
    | sed "s|^|after $r: |"
done
