#!/bin/bash
# Issue 13: one-step chunk latency on idle cores (nothing else running), batch 1, --threads 1, blocks of 25 calls:
# the three GPU maps of ../diamond-2 (quality-bar tasks) and the EMA map of stick-pull seed 1.
cd "$(dirname "$0")/../../../.."
for m in outputs/diamond2/gpu-maps/pp-b1024-s1500 outputs/diamond2/gpu-maps/peg outputs/diamond2/gpu-maps/bp \
         outputs/diamond4/stick1_ema; do
  .venv/bin/python -m ttfkit.scripts.bench_diamond latency --diamond $m --repeats 300 --threads 1 | sed "s|^|$(basename $m): |"
done
