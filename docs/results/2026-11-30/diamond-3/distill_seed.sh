#!/usr/bin/env bash
# Issue 13: the 26-minute CPU recipe (section 2) for stick-pull training seed SEED, then closed_loop.sh on its map.
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
SEED=$1
C=outputs/align/stick10/runs/adamw_lr0.001_seed$SEED/checkpoints/step_001500
M=outputs/diamond3/stick${SEED}_map30
[ -e $M/model.safetensors ] && grep -q "^10000," $M/curve.csv || .venv/bin/ttf distill --checkpoint $C \
    --dataset outputs/align/stick10/demos.zarr --out $M --steps 10000 --batch 256 --lr 3e-4 --warmup 500 \
    --eval-every 1000 --diag-fraction 0.25 --trajectory-fraction 0.75 --target-ratio 2 --threads 1 \
    --split-seed $SEED --no-progress
"$(dirname "$0")/closed_loop.sh" $SEED $M
