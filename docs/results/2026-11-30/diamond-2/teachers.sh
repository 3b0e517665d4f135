#!/usr/bin/env bash
# Teachers for the one-step policy on the other two quality-bar tasks (30 demos, default flow MLP, 2000 steps).
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
for task in peg-insert-side button-press-topdown; do
  d=outputs/diamond2/$task
  [ -d $d/data.zarr ] || .venv/bin/ttf collect --env ttfkit/metaworld-$task-v3 --episodes 30 --out $d/data.zarr
  [ -d $d/teacher/checkpoints/step_002000 ] || .venv/bin/ttf train --dataset $d/data.zarr --out $d/teacher --backbone mlp --steps 2000 --threads 1 --no-progress
done
echo TEACHERS DONE
