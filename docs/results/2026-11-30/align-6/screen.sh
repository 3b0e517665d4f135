#!/usr/bin/env bash
# Issue 12: screen candidate third settings (10 scripted demos, the align recipe: flow MLP, AdamW 1e-3, 1500 steps,
# training seed 0) on the development seeds 330000-330029. Rule fixed before running: among tasks whose base success
# lies in [30%, 70%], take the one closest to 50%. Resumable (skips finished steps).
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
T=.venv/bin/ttf
for task in pick-place basketball hammer sweep-into assembly; do
  d=outputs/align6/screen/$task; mkdir -p $d
  [ -e $d/demos.zarr ] || $T collect --env ttfkit/metaworld-$task-v3 --episodes 10 --seed 0 --out $d/demos.zarr
  [ -e $d/run/checkpoints/step_001500 ] || $T train --dataset $d/demos.zarr --out $d/run --steps 1500 --ckpt-every 1500 \
      --lr 1e-3 --optim adamw --seed 0 --threads 1 --no-progress > $d/train.log 2>&1
  [ -e $d/dev.json ] || $T eval --checkpoint $d/run/checkpoints/step_001500 --env ttfkit/metaworld-$task-v3 \
      --episodes 30 --episode-seed 330000 --threads 1 --out $d/dev.json | tail -2
  echo "SCREEN $task $(python3 -c "import json;r=json.load(open('$d/dev.json'));print(r.get('successes', r.get('success')), r.get('n_episodes', ''))")"
done
