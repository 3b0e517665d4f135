#!/usr/bin/env bash
# Issue 13: chunk latency before (b70fbc6) and after (this commit: the joined observation pipeline, low-dim keys
# joined, checked and normalised once, the padded encoder output handed to the sampler), alternating A/B runs of
# `bench_diamond latency` (the same bench in both) on one idle core, batch 1, --threads 1, 300 calls per policy in
# blocks of 25. First it checks that both versions give the same chunks, bit for bit (check_same_chunks.py).
# MAP: any `ttf distill` directory of the default MLP flow policy (latency does not depend on the weights).
# Usage: latency_ab.sh MAP ROUNDS > log
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../../../.."
files="policies/base.py policies/encoders.py"
mkdir -p outputs/ab9 && for f in $files; do cp "$f" "outputs/ab9/$(basename "$f").after"; done
restore() { for f in $files; do cp "outputs/ab9/$(basename "$f").after" "$f"; done; }
trap restore EXIT
before() { for f in $files; do git show "b70fbc6:$f" > "$f"; done; }
.venv/bin/python "$here/check_same_chunks.py" "$1" outputs/ab9/after.pt | sed "s|^|after: |"
before && .venv/bin/python "$here/check_same_chunks.py" "$1" outputs/ab9/before.pt outputs/ab9/after.pt \
  | sed "s|^|before: |" && restore
for r in $(seq "$2"); do
  for v in after before; do
    if [ $v = before ]; then before; fi
    taskset -c 0 .venv/bin/python -m ttfkit.scripts.bench_diamond latency --diamond "$1" --repeats 300 --threads 1 \
      | sed "s|^|$v $r: |"
    restore
  done
done
