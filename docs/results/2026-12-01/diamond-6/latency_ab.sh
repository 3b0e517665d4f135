#!/usr/bin/env bash
# Issue 13: one-step chunk latency before (8b4e6c0) and after (01092db) the leaner chunk path, alternating A/B runs of
# `bench_diamond latency` on idle cores (nothing else running), batch 1, --threads 1, 300 calls per policy.
# MAP: any `ttf distill` directory of the default MLP flow policy (latency does not depend on the weights).
# Usage: latency_ab.sh MAP ROUNDS > log
set -euo pipefail
cd "$(dirname "$0")/../../../.."
for r in $(seq "$2"); do
  for v in after before; do
    [ $v = before ] && git show 8b4e6c0:policies/base.py > policies/base.py
    .venv/bin/python -m ttfkit.scripts.bench_diamond latency --diamond "$1" --repeats 300 --threads 1 | sed "s|^|$v $r: |"
    git checkout -q policies/base.py
  done
done
