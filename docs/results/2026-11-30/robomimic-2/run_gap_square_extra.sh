#!/bin/bash
# Episodes 20-49 (seeds 100020-100049) for the final (step 3000) checkpoint of each run of
# run_gap_square.sh, so that the final checkpoints have 50 episodes (the study itself evaluated 20 per
# checkpoint, seeds 100000-100019). Run from the repository root after run_gap_square.sh.
cd "$(git rev-parse --show-toplevel)"
export MUJOCO_GL=egl
R=docs/results/2026-11-30/robomimic-2
for opt in adamw dopr-adamw; do
  echo "load $(cat /proc/loadavg)"
  /usr/bin/time -f "eval $opt wall %e s" .venv/bin/ttf eval \
      --policy outputs/robomimic2/gap_square/runs/${opt}_lr0.001_seed0/checkpoints/step_003000 \
      --env ttfkit/robomimic-square-v0 --episodes 30 --seed 100020 --workers 2 \
      --out $R/gap_square_${opt}_seed0_step3000_seeds100020-100049.json
done
echo "load $(cat /proc/loadavg)"
