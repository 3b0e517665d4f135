#!/usr/bin/env bash
# Closed loop of the 10k-step pixel policy's checkpoints, 50 evaluation episodes (seeds 100000+), 150-step limit
# as in docs/results/2026-11-30/pixels.
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
for s in "$@"; do
  c=outputs/pixels2/bpt-conv16-10k/checkpoints/step_$(printf %06d $s)
  .venv/bin/ttf eval --checkpoint $c --env ttfkit/metaworld-button-press-topdown-v3 --episodes 50 --n-envs 8 \
    --workers 0 --max-steps 150 --threads 1 --out outputs/pixels2/eval_step$s.json --video outputs/pixels2/videos_step$s --n-videos 2
done
