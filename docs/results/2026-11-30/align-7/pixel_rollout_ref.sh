#!/usr/bin/env bash
# Issue 12, the simulator reference on the pixel button-press setting's blind seeds: best-of-4 with the rollout reward
# (horizon 120, 2-step continuation; ../pixels-4 ran it on seed 0: 44/50), 50 evaluation episodes.
# Usage: pixel_rollout_ref.sh SEED   (one seed per core: taskset -c 0 ... 1 & taskset -c 1 ... 2)
set -euo pipefail
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
O=docs/results/2026-11-30/align-7
C=outputs/align7/bpt-pixels-seed$1/checkpoints/step_001500
[ -f $O/bo4_rollout_seed$1.json ] || .venv/bin/ttf align --checkpoint $C --env ttfkit/metaworld-button-press-topdown-v3 \
    --episodes 50 --max-steps 150 --threads 1 --method best-of-n --particles 4 --reward rollout --horizon 120 \
    --rollout-flow-steps 2 --out $O/bo4_rollout_seed$1.json > $O/bo4_rollout_seed$1.log 2>&1
