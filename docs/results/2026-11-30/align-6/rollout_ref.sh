#!/usr/bin/env bash
# Issue 12: the simulator reference on the third setting (align-2's: best-of-4 with the rollout reward, horizon 120,
# 2-step continuation), evaluation seeds 100000-100049, training seeds given as arguments. Resumable.
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
for seed in "$@"; do
  C=outputs/align6/basketball-10/runs/adamw_lr0.001_seed$seed/checkpoints/step_001500
  [ -e $C/align/best-of-n-rollout-x4.json ] || .venv/bin/ttf align --checkpoint $C --env ttfkit/metaworld-basketball-v3 \
      --method best-of-n --reward rollout --particles 4 --episodes 50 --threads 1 --out $C/align/best-of-n-rollout-x4.json
done
