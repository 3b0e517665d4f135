#!/usr/bin/env bash
# DoPr's step-time overhead on an otherwise idle core (issue 18): the default schedule (stat_every 10,
# inverse_every 50) timed directly over 50-step windows, variants interleaved step by step in one process.
# Pinned to core 0 (taskset) with one torch thread; the session's other jobs ran on core 1.
set -euo pipefail
HERE=docs/results/2026-11-30/dopr-idle
PY=.venv/bin/python
taskset -c 0 $PY -m ttfkit.scripts.bench_optim --nets mlp --bases adamw muon --ranks exact 64 --reps 0 \
    --direct-nets mlp --direct-reps 8 --threads 1 --out $HERE/bench_idle.jsonl > $HERE/bench_mlp.log 2>&1
taskset -c 0 $PY -m ttfkit.scripts.bench_optim --nets unet --bases adamw muon --ranks exact 64 --reps 0 \
    --direct-nets unet --direct-reps 3 --threads 1 --out $HERE/bench_idle.jsonl > $HERE/bench_unet.log 2>&1
