#!/bin/bash
# Issue 13: the official code's schedule shape (constant lr after the warm-up, sampling from an EMA) instead of
# cosine-to-0, otherwise distill_budget.sh unchanged: 18000 steps, stick-pull policy of training seed SEED
# (default 1), both cores, idle.   Usage: distill_constant.sh [SEED]
set -e
SEED=${1:-1}
C=outputs/align/stick10/runs/adamw_lr0.001_seed${SEED}/checkpoints/step_001500
.venv/bin/ttf distill --checkpoint $C --dataset outputs/align/stick10/demos.zarr --out outputs/diamond4/stick${SEED}_const18k \
    --steps 18000 --batch 256 --lr 3e-4 --warmup 500 --schedule constant --eval-every 2000 --diag-fraction 0.25 \
    --trajectory-fraction 0.75 --ema 0.999 --target-ratio 2 --threads 2 --split-seed $SEED --no-progress
