#!/usr/bin/env bash
# Issue 13: what the EMA-distilled map of stick-pull training seed SEED buys in closed loop, 50 evaluation episodes
# (seeds 100000+), the same cells as ../diamond-3 so the maps compare:
#   one-step policy (one map call per chunk) against the teacher with 10 and 1 Euler steps;
#   Diamond-SMC, 8 particles (24 NFE/chunk) and 24 particles (72), with ../diamond-3's refit critic.
# Usage: closed_loop_ema.sh SEED [MAP_DIR [OUT_DIR]]   (defaults: outputs/diamond4/stickSEED_ema,
#   outputs/diamond4/closed_loop_seedSEED; resumable: finished cells are skipped)
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
SEED=$1
MAP=${2:-outputs/diamond4/stick${SEED}_ema}
C=outputs/align/stick10/runs/adamw_lr0.001_seed$SEED/checkpoints/step_001500
O=${3:-outputs/diamond4/closed_loop_seed$SEED}; mkdir -p $O
[ -s $O/one_step.jsonl ] || .venv/bin/python -m ttfkit.scripts.bench_diamond closed-loop --diamond $MAP \
    --env ttfkit/metaworld-stick-pull-v3 --episodes 50 --n-envs 10 --flow-steps 10 1 --threads 1 > $O/one_step.jsonl
A=".venv/bin/ttf align --env ttfkit/metaworld-stick-pull-v3 --reward critic --critic $C/critic_refit --episodes 50 --threads 1"
[ -e $O/smc-diamond.json ] || $A --checkpoint $MAP --method smc --particles 8 --smc-steps 2 --value-samples 1 --out $O/smc-diamond.json
[ -e $O/smc-diamond-p24.json ] || $A --checkpoint $MAP --method smc --particles 24 --smc-steps 2 --value-samples 1 --out $O/smc-diamond-p24.json
echo CLOSED LOOP DONE $SEED
