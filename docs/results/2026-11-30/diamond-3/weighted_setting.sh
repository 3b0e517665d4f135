#!/usr/bin/env bash
# Issue 13: Weighted Diamond Maps (closed_loop.sh's weighted cell: 4 candidates per guided step, 2-step ODE flow map,
# 154 NFE/chunk) with the refit critic on another issue-12 setting, 50 evaluation episodes per training seed.
# Usage: weighted_setting.sh SETTING ENV_TASK   e.g. shelf10 shelf-place   (resumable)
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
for seed in 0 1 2; do
  C=outputs/align/$1/runs/adamw_lr0.001_seed$seed/checkpoints/step_001500
  O=outputs/diamond3/weighted_$1; mkdir -p $O
  [ -e $O/seed$seed.json ] || .venv/bin/ttf align --checkpoint $C --env ttfkit/metaworld-$2-v3 --reward critic \
      --critic $C/critic_refit --episodes 50 --threads 1 --method weighted --particles 4 --out $O/seed$seed.json
done
