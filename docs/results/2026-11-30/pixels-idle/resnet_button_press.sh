#!/usr/bin/env bash
# Issue 17: Diffusion Policy's encoder family in closed loop. The button-press-topdown recipe of ../pixels-2 (50 demos,
# flow MLP, agent_pos + one 84x84 corner camera, random 0.9 crop, To 1, H 16, Ta 8, AdamW 1e-3, EMA, 10000 x 32,
# seed 0), with the half-width ResNet-18 (GroupNorm, spatial softmax; resnet_width 32, 2.8M encoder parameters)
# instead of the 16-channel conv net: the same samples, which bench_encoders puts at ~60 CPU-minutes for this
# encoder (92 samples per CPU-second), the issue's training budget. The full-width ResNet-18 (26 samples per
# CPU-second) would get ~3000 steps in that budget. Then 50 evaluation episodes (seeds 100000+, 150-step limit).
# Resumable (ttf train --resume). Run pinned: taskset -c 0 docs/results/2026-11-30/pixels-idle/resnet_button_press.sh
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
R=outputs/pixels5/bpt-resnet18w32-10k
P=docs/results/2026-11-30/pixels-idle
ARGS="--dataset outputs/pixels/button-press-topdown.zarr --out $R --policy-type flow --backbone mlp --steps 10000 --batch 32 \
  --lr 1e-3 --val-fraction 0 --ckpt-every 2500 --n-obs-steps 1 --horizon 16 --n-action-steps 8 --threads 1 --no-progress --seed 0 \
  --obs-keys agent_pos pixels"
if [ ! -d $R/checkpoints/step_010000 ]; then
  if [ -d $R/checkpoints ]; then .venv/bin/ttf train --resume $R; else
  /usr/bin/time -f "train wall %e s user %U s" .venv/bin/ttf train $ARGS \
      --policy-option 'encoder={"image_encoder":"resnet18","resnet_width":32,"crop_ratio":0.9}'; fi
fi
for s in ${STEPS:-10000}; do
  c=$R/checkpoints/step_$(printf %06d $s)
  [ -e $P/eval_button-press-topdown_resnet18w32_step$s.json ] || .venv/bin/ttf eval --checkpoint $c \
    --env ttfkit/metaworld-button-press-topdown-v3 --episodes 50 --n-envs 8 --workers 0 --max-steps 150 --threads 1 \
    --out $P/eval_button-press-topdown_resnet18w32_step$s.json
done
cp $R/metrics.csv $P/metrics_button-press-topdown_resnet18w32.csv
