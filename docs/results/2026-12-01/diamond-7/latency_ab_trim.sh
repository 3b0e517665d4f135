#!/usr/bin/env bash
# Issue 13: chunk latency before (6fe78a9: folded one-step call) and after (this commit: fewer kernel calls in the
# shared chunk path: batch-1 padding as one copy, no single-feature concatenation, no einops in the MLP backbone),
# alternating A/B runs of `bench_diamond latency` (this commit's
# bench in both) on one idle core, batch 1, --threads 1, 300 calls per policy in blocks of 25.
# MAP: any `ttf distill` directory of the default MLP flow policy (latency does not depend on the weights).
# Usage: latency_ab_trim.sh MAP ROUNDS > log
set -euo pipefail
cd "$(dirname "$0")/../../../.."
files="policies/base.py policies/encoders.py policies/backbones/mlp.py"
mkdir -p outputs/ab && for f in $files; do cp "$f" "outputs/ab/$(basename "$f").after"; done
restore() { for f in $files; do cp "outputs/ab/$(basename "$f").after" "$f"; done; }
trap restore EXIT
for r in $(seq "$2"); do
  for v in after before; do
    if [ $v = before ]; then for f in $files; do git show "6fe78a9:$f" > "$f"; done; fi
    taskset -c 0 .venv/bin/python -m ttfkit.scripts.bench_diamond latency --diamond "$1" --repeats 300 --threads 1 \
      | sed "s|^|$v $r: |"
    restore
  done
done
