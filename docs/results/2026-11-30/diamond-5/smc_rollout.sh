#!/usr/bin/env bash
# Issue 13: Diamond-SMC with the rollout reward (simulator look-ahead), against align-3's GLASS-SMC cell with the same
# reward on stick-pull 10 demos, training seed 0 (outputs/align/stick10/runs/adamw_lr0.001_seed0, step 1500):
# 4 particles, 2 SMC steps, 1 posterior sample per value, look-ahead horizon 120 with 2-step continuation, no
# look-ahead workers. GLASS-SMC (3 inner steps) measured 12/20 at 36 NFE/chunk on seeds 100000-100019; here
#   1. Diamond-SMC, the constant-lr + EMA map of that policy (../diamond-4, stick0_const18k), seeds 100000-100019 (the GLASS cell's; 50 would take ~2 hours here);
#   2. (if time allows) GLASS-SMC, the same cell as align-3, on seeds 100020-100049.
# Usage: smc_rollout.sh diamond|glass   (resumable per cell: a finished JSON is skipped)
set -euo pipefail
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
C=outputs/align/stick10/runs/adamw_lr0.001_seed0/checkpoints/step_001500
O=docs/results/2026-11-30/diamond-5
A=".venv/bin/ttf align --env ttfkit/metaworld-stick-pull-v3 --method smc --reward rollout --particles 4 --smc-steps 2
   --value-samples 1 --horizon 120 --rollout-flow-steps 2 --lookahead-workers 0 --threads 1"
case $1 in
  diamond) [ -e $O/smc_rollout_diamond.json ] || $A --checkpoint outputs/diamond4/stick0_const18k --episodes 20 \
               --episode-seed 100000 --out $O/smc_rollout_diamond.json ;;
  glass)   [ -e $O/smc_rollout_glass_100020.json ] || $A --checkpoint $C --inner-steps 3 --episodes 30 \
               --episode-seed 100020 --out $O/smc_rollout_glass_100020.json ;;
esac
