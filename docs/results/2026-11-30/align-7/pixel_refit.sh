#!/usr/bin/env bash
# Issue 12, the pixel button-press setting: the critic refit once on 100 episodes of its own best-of-8 policy (ttf critic
# --refit-episodes 100 --refit-particles 8, as align-2/align-6 did on the state settings), then best-of-8 on the 50
# evaluation episodes. Usage: pixel_refit.sh SEED   (resumable)
set -euo pipefail
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
ENV=ttfkit/metaworld-button-press-topdown-v3
O=docs/results/2026-11-30/align-7
if [ "$1" = 0 ]; then C=outputs/pixels/runs/button-press-topdown-pixels/checkpoints/step_001500
else C=outputs/align7/bpt-pixels-seed$1/checkpoints/step_001500; fi
CR=outputs/align7/critic-refit-seed$1
[ -f $CR/model.safetensors ] || .venv/bin/ttf critic --checkpoint $C --env $ENV --episodes 100 --max-steps 150 \
    --refit-episodes 100 --refit-particles 8 --threads 1 --out $CR > $O/critic_refit_seed$1.log 2>&1
cp $CR/report.json $O/critic_refit_report_seed$1.json
[ -f $O/bo8_critic_refit_seed$1.json ] || .venv/bin/ttf align --checkpoint $C --env $ENV --episodes 50 --max-steps 150 \
    --threads 1 --method best-of-n --particles 8 --reward critic --critic $CR \
    --out $O/bo8_critic_refit_seed$1.json > $O/bo8_critic_refit_seed$1.log 2>&1
