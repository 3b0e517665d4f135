#!/bin/bash
# Issue 13: the EMA recipe for the full 30-minute CPU budget on stick-pull training seed 1's policy: 18000 steps
# (the idle two-thread rate of ../diamond-3, 95 ms per step, gives 28.5 minutes), both cores, nothing else running.
set -e
C=outputs/align/stick10/runs/adamw_lr0.001_seed1/checkpoints/step_001500
.venv/bin/ttf distill --checkpoint $C --dataset outputs/align/stick10/demos.zarr --out outputs/diamond4/stick1_ema18k \
    --steps 18000 --batch 256 --lr 3e-4 --warmup 500 --eval-every 2000 --diag-fraction 0.25 --trajectory-fraction 0.75 \
    --ema 0.999 --target-ratio 2 --threads 2 --split-seed 1 --no-progress
