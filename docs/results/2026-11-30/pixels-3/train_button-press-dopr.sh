#!/usr/bin/env bash
# DoPr's effect on the pixel policy (issue 17): pixels-2's train_button-press.sh with --optim dopr-adamw (DoPr's
# default settings), everything else the same (same 50 demos, lr 1e-3 not tuned for either optimizer, seed 0,
# 10000 x 32); then the same closed-loop evaluation as pixels-2 (seeds 100000-100049, 150-step limit) at steps
# 5000 and 10000. Resumable.
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
R=outputs/pixels3/bpt-conv16-10k-dopr-adamw
ARGS="--dataset outputs/pixels/button-press-topdown.zarr --out $R --policy flow --backbone mlp --optim dopr-adamw --steps 10000 --batch 32 \
  --lr 1e-3 --val-fraction 0 --ckpt-every 2500 --n-obs-steps 1 --horizon 16 --n-action-steps 8 --threads 1 --no-progress --seed 0 \
  --obs-keys agent_pos pixels"
if [ -d $R/checkpoints/step_010000 ]; then :; elif [ -d $R/checkpoints ]; then .venv/bin/ttf train --resume $R; else
.venv/bin/ttf train $ARGS --policy-option 'encoder={"image_encoder":"conv","image_channels":16,"crop_ratio":0.9}'; fi
for s in 010000 005000; do
  [ -f outputs/pixels3/eval_button-press-topdown_dopr-adamw_step$s.json ] || \
  .venv/bin/ttf eval --checkpoint $R/checkpoints/step_$s --env ttfkit/metaworld-button-press-topdown-v3 --episodes 50 --n-envs 8 \
    --workers 0 --max-steps 150 --threads 1 --out outputs/pixels3/eval_button-press-topdown_dopr-adamw_step$s.json \
    --video outputs/pixels3/videos_button-press-topdown_dopr-adamw_step$s --n-videos 1
done
echo DOPR DONE
