#!/bin/bash
# Issue 13: the 16000-step CPU recipe of ../diamond-3 plus an EMA of the map's weights (decay 0.999).
# usage: distill_ema.sh SEED THREADS   (stick-pull 10-demo policy of training seed SEED)
set -e
SEED=$1; THREADS=${2:-1}
C=outputs/align/stick10/runs/adamw_lr0.001_seed${SEED}/checkpoints/step_001500
.venv/bin/ttf distill --checkpoint $C --dataset outputs/align/stick10/demos.zarr --out outputs/diamond4/stick${SEED}_ema \
    --steps 16000 --batch 256 --lr 3e-4 --warmup 500 --eval-every 2000 --diag-fraction 0.25 --trajectory-fraction 0.75 \
    --ema 0.999 --target-ratio 2 --threads $THREADS --split-seed $SEED --no-progress
