#!/usr/bin/env bash
# Issue 12: the rest of the budget grid on the third setting with the refit critic (CKPT/critic, fitted by
# third.sh), with ttf gap's budget settings (ttfkit.scripts.gap_align.method_config): best-of-4, best-of-16 and
# guidance at 8x (2 GLASS posterior samples of 3 steps per guided step, 64 NFE). Results are written where ttf gap
# caches its cells. Resumable.
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
for seed in 0 1 2; do
  C=outputs/align6/basketball-10/runs/adamw_lr0.001_seed$seed/checkpoints/step_001500
  A=".venv/bin/ttf align --checkpoint $C --env ttfkit/metaworld-basketball-v3 --reward critic --critic $C/critic --episodes 50 --threads 1"
  [ -e $C/align/best-of-n-critic-x4.json ] || $A --method best-of-n --particles 4 --out $C/align/best-of-n-critic-x4.json
  [ -e $C/align/best-of-n-critic-x16.json ] || $A --method best-of-n --particles 16 --out $C/align/best-of-n-critic-x16.json
  [ -e $C/align/guidance-critic-x8.json ] || $A --method guidance --particles 1 --value-samples 2 --inner-steps 3 \
      --out $C/align/guidance-critic-x8.json
done
