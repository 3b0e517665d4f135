#!/usr/bin/env bash
# Issue 13: what a Diamond Map of an alignment-regime policy buys in closed loop (stick-pull, 10 demos, AdamW,
# training seed SEED; the refit critic of align-2/align-3), 50 evaluation episodes (seeds 100000+):
#   GLASS-SMC 8x (72 NFE/chunk, align-3's setting, rerun here through ttf align), Diamond-SMC (same settings, the map
#   as posterior),
#   Diamond-SMC with 24 particles (GLASS-SMC 8x's NFE), GLASS-SMC at the Diamond's NFE (inner_steps 1), and
#   Weighted Diamond Maps with the critic at 16x.
# Usage: closed_loop.sh SEED MAP_DIR   (resumable: finished cells are skipped)
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
SEED=$1; MAP=$2
C=outputs/align/stick10/runs/adamw_lr0.001_seed$SEED/checkpoints/step_001500
O=outputs/diamond3/closed_loop_seed$SEED; mkdir -p $O
A=".venv/bin/ttf align --env ttfkit/metaworld-stick-pull-v3 --reward critic --critic $C/critic_refit --episodes 50 --threads 1"
SMC="--method smc --particles 8 --smc-steps 2 --value-samples 1"
[ -e $O/smc-glass.json ] || $A --checkpoint $C $SMC --inner-steps 3 --out $O/smc-glass.json
[ -e $O/smc-diamond.json ] || $A --checkpoint $MAP $SMC --out $O/smc-diamond.json
[ -e $O/smc-diamond-p24.json ] || $A --checkpoint $MAP --method smc --particles 24 --smc-steps 2 --value-samples 1 --out $O/smc-diamond-p24.json
[ -e $O/smc-glass-inner1.json ] || $A --checkpoint $C $SMC --inner-steps 1 --out $O/smc-glass-inner1.json
[ -e $O/weighted-x16.json ] || $A --checkpoint $C --method weighted --particles 4 --out $O/weighted-x16.json
echo CLOSED LOOP DONE $SEED
