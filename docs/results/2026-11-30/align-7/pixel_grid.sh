#!/usr/bin/env bash
# Issue 12, after pixel_seeds.sh: the rest of the critic grid on the pixel button-press setting, every training seed:
# best-of-16 (160 NFE per chunk) and SMC at 8x (8 particles, 2 SMC steps, 1 GLASS posterior sample of 3 inner steps per
# value: 72 NFE), the settings ttf gap's alignment stage uses (scripts/gap_align.method_config), same critic per seed.
# Usage: pixel_grid.sh SEED...   (resumable). Pinned: taskset -c 1 ...
set -euo pipefail
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
ENV=ttfkit/metaworld-button-press-topdown-v3
O=docs/results/2026-11-30/align-7
for SEED in "$@"; do
  if [ "$SEED" = 0 ]; then C=outputs/pixels/runs/button-press-topdown-pixels/checkpoints/step_001500; CR=outputs/pixels4/critic
  else C=outputs/align7/bpt-pixels-seed$SEED/checkpoints/step_001500; CR=outputs/align7/critic-seed$SEED; fi
  A=".venv/bin/ttf align --checkpoint $C --env $ENV --episodes 50 --max-steps 150 --threads 1 --reward critic --critic $CR"
  [ -f $O/bo16_critic_seed$SEED.json ] || $A --method best-of-n --particles 16 --out $O/bo16_critic_seed$SEED.json \
      > $O/bo16_critic_seed$SEED.log 2>&1
  [ -f $O/smc8_critic_seed$SEED.json ] || $A --method smc --particles 8 --smc-steps 2 --value-samples 1 --inner-steps 3 \
      --out $O/smc8_critic_seed$SEED.json > $O/smc8_critic_seed$SEED.log 2>&1
done
