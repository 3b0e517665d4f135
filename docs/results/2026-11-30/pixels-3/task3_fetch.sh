#!/usr/bin/env bash
# Fetch task (issue 17): 50 scripted demos with one 84x84 camera (external_camera_0), the state policy
# (agent_pos + environment_state, 1500 x 32) and the pixel policy (agent_pos + pixels, conv16, 0.9 crop,
# 10000 x 32, checkpoint every 2500) on them, both evaluated on seeds 100000-100049 (50 episodes, the env's
# 50-step limit; pixel policy at steps 5000 and 10000, one rollout video). Task chosen by select_task.sh.
# Resumable: finished steps are skipped, an interrupted training resumes.
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
T=${1:-push}; O=outputs/pixels3; D=$O/fetch-$T.zarr; R=$O/fetch-$T
[ -d $D ] || .venv/bin/ttf collect --env ttfkit/fetch-$T-v4 --episodes 50 --pixels --image-size 84 --camera external_camera_0 --seed 0 --out $D
COMMON="--policy-type flow --backbone mlp --batch 32 --lr 1e-3 --val-fraction 0 --n-obs-steps 1 --horizon 16 --n-action-steps 8 --threads 1 --no-progress --seed 0"
[ -d $R-state/checkpoints/step_001500 ] || .venv/bin/ttf train --dataset $D --out $R-state $COMMON --steps 1500 --ckpt-every 1500 --obs-keys agent_pos environment_state
[ -f $O/eval_fetch-${T}_state.json ] || .venv/bin/ttf eval --checkpoint $R-state/checkpoints/step_001500 --env ttfkit/fetch-$T-v4 --episodes 50 --n-envs 8 --workers 0 --threads 1 --out $O/eval_fetch-${T}_state.json
if [ -d $R-pixels/checkpoints/step_010000 ]; then :; elif [ -d $R-pixels/checkpoints ]; then .venv/bin/ttf train --resume $R-pixels; else
.venv/bin/ttf train --dataset $D --out $R-pixels $COMMON --steps 10000 --ckpt-every 2500 --obs-keys agent_pos pixels \
  --policy-option 'encoder={"image_encoder":"conv","image_channels":16,"crop_ratio":0.9}'; fi
for s in 010000 005000; do
  [ -f $O/eval_fetch-${T}_pixels_step$s.json ] || .venv/bin/ttf eval --checkpoint $R-pixels/checkpoints/step_$s --env ttfkit/fetch-$T-v4 --episodes 50 --n-envs 8 --workers 0 --threads 1 \
    --out $O/eval_fetch-${T}_pixels_step$s.json --video $O/videos_fetch-${T}_step$s --n-videos 1
done
echo FETCH DONE
