#!/usr/bin/env bash
# Issue 13: one-step chunk latency before (b220527: one-step call with only its zero-initialised layer's time
# features folded; sinusoidal frequencies rebuilt on every network call) and after (this commit: the one-step call
# fully folded, frequencies cached for every policy), alternating A/B runs of `bench_diamond latency` (this commit's
# bench in both) on one idle core, batch 1, --threads 1, 300 calls per policy in blocks of 25.
# MAP: any `ttf distill` directory of the default MLP flow policy (latency does not depend on the weights).
# Usage: latency_ab.sh MAP ROUNDS > log
set -euo pipefail
cd "$(dirname "$0")/../../../.."
files="align/one_step.py policies/backbones/__init__.py"
mkdir -p outputs/ab && for f in $files; do cp "$f" "outputs/ab/$(basename "$f").after"; done
restore() { for f in $files; do cp "outputs/ab/$(basename "$f").after" "$f"; done; }
trap restore EXIT
for r in $(seq "$2"); do
  for v in after before; do
    if [ $v = before ]; then for f in $files; do git show "b220527:$f" > "$f"; done; fi
    taskset -c 0 .venv/bin/python -m ttfkit.scripts.bench_diamond latency --diamond "$1" --repeats 300 --threads 1 \
      | sed "s|^|$v $r: |"
    restore
  done
done
