#!/usr/bin/env bash
# Second pixel task (issue 17): drawer-close, 50 demos, the same pixel recipe (10000 x 32) and a state policy.
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
T=drawer-close; D=outputs/pixels2/$T.zarr; R=outputs/pixels2/$T
[ -d $D ] || .venv/bin/ttf collect --env ttfkit/metaworld-$T-v3 --episodes 50 --out $D --pixels --image-size 84 --camera corner --seed 0
COMMON="--policy-type flow --backbone mlp --batch 32 --lr 1e-3 --val-fraction 0 --n-obs-steps 1 --horizon 16 --n-action-steps 8 --threads 1 --no-progress --seed 0"
[ -d $R-state/checkpoints/step_001500 ] || .venv/bin/ttf train --dataset $D --out $R-state $COMMON --steps 1500 --ckpt-every 1500 --obs-keys agent_pos environment_state
.venv/bin/ttf eval --checkpoint $R-state/checkpoints/step_001500 --env ttfkit/metaworld-$T-v3 --episodes 50 --n-envs 8 --workers 0 --max-steps 150 --threads 1 --out outputs/pixels2/eval_${T}_state.json
if [ -d $R-pixels/checkpoints ]; then .venv/bin/ttf train --resume $R-pixels; else
.venv/bin/ttf train --dataset $D --out $R-pixels $COMMON --steps 10000 --ckpt-every 2500 --obs-keys agent_pos pixels \
  --policy-option 'encoder={"image_encoder":"conv","image_channels":16,"crop_ratio":0.9}'; fi
for s in 010000 005000; do
.venv/bin/ttf eval --checkpoint $R-pixels/checkpoints/step_$s --env ttfkit/metaworld-$T-v3 --episodes 50 --n-envs 8 --workers 0 --max-steps 150 --threads 1 --out outputs/pixels2/eval_${T}_pixels_step$s.json --video outputs/pixels2/videos_${T}_step$s --n-videos 2
done
echo TASK2 DONE
