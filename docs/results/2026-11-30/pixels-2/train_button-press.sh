#!/usr/bin/env bash
# Pixel policy, button-press-topdown, 50 demos (issue 17): the pixels README recipe with 10000 steps instead of 1500.
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
R=outputs/pixels2/bpt-conv16-10k
ARGS="--dataset outputs/pixels/button-press-topdown.zarr --out $R --policy flow --backbone mlp --steps 10000 --batch 32 \
  --lr 1e-3 --val-fraction 0 --ckpt-every 2500 --n-obs-steps 1 --horizon 16 --n-action-steps 8 --threads 1 --no-progress --seed 0 \
  --obs-keys agent_pos pixels"
if [ -d $R/checkpoints ]; then .venv/bin/ttf train --resume $R; else
.venv/bin/ttf train $ARGS --policy-option 'encoder={"image_encoder":"conv","image_channels":16,"crop_ratio":0.9}'; fi
