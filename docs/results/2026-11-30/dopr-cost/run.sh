#!/usr/bin/env bash
# The measurements of this folder, in order (one CPU-heavy job at a time). Run from the repository root.
set -euo pipefail
HERE=docs/results/2026-11-30/dopr-cost
BEFORE=a8af087   # main before this work (cheap AP: warm subspace iteration on the full Sigma)
PY=.venv/bin/python
$PY $HERE/compare.py --net mlp --before $BEFORE --bases adamw muon --windows 8 --window 50 --profile \
    --out $HERE/compare_mlp.jsonl > $HERE/compare_mlp.log 2>&1
$PY $HERE/accuracy_tracked.py --before $BEFORE --steps 500 --out $HERE/accuracy_tracked.jsonl \
    > $HERE/accuracy_tracked.log 2>&1
# one 50-step window after DoPr's first step (time: ~20 min under the load of the day)
$PY $HERE/compare.py --net unet --before $BEFORE --bases adamw muon --windows 1 --window 50 --warmup-steps 1 \
    --profile --out $HERE/compare_unet.jsonl > $HERE/compare_unet.log 2>&1
# AdamW only (Muon's CPU step is 3x AdamW's, so windows are ~4x shorter), with min-sum ratios
$PY $HERE/compare.py --net mlp --before $BEFORE --bases adamw --windows 8 --window 50 --warmup-steps 1 \
    --profile --out $HERE/compare_mlp_adamw.jsonl > $HERE/compare_mlp_adamw.log 2>&1
