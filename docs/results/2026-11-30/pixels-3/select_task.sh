#!/usr/bin/env bash
# Issue 17, Fetch task choice: scripted expert and state policy on both Fetch tasks, on seeds that are neither
# demos (0-49) nor evaluation seeds (100000+): experts on episode seeds 0-49 of `ttf eval` (= the demo layouts),
# state policies (1500 x 32, the pixels-2 recipe) on episode seeds 1000-1049. Resumable.
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
O=outputs/pixels3
COMMON="--policy-type flow --backbone mlp --batch 32 --lr 1e-3 --val-fraction 0 --n-obs-steps 1 --horizon 16 --n-action-steps 8 --threads 1 --no-progress --seed 0"
for T in push pick-and-place; do
  [ -f $O/expert_$T.json ] || .venv/bin/ttf eval --expert --env ttfkit/fetch-$T-v4 --episodes 50 --episode-seed 0 --n-envs 8 --workers 0 --threads 1 --out $O/expert_$T.json
  D=$O/fetch-$T.zarr
  [ -d $D ] || .venv/bin/ttf collect --env ttfkit/fetch-$T-v4 --episodes 50 --pixels --image-size 84 --camera external_camera_0 --seed 0 --out $D
  [ -d $O/fetch-$T-state/checkpoints/step_001500 ] || .venv/bin/ttf train --dataset $D --out $O/fetch-$T-state $COMMON --steps 1500 --ckpt-every 1500 --obs-keys agent_pos environment_state
  [ -f $O/check_${T}_state.json ] || .venv/bin/ttf eval --checkpoint $O/fetch-$T-state/checkpoints/step_001500 --env ttfkit/fetch-$T-v4 --episodes 50 --episode-seed 1000 --n-envs 8 --workers 0 --threads 1 --out $O/check_${T}_state.json
done
echo SELECT DONE
