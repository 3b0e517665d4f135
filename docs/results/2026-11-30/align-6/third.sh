#!/usr/bin/env bash
# Issue 12: the screened third setting (screen.sh's rule) through the main job's alignment stage, as align-2/align-3
# ran the other settings: 3 training seeds, base and aligned on the evaluation seeds 100000-100049; critic fitted on
# 100 base rollouts (seeds 300000+) and refit once on 100 rollouts of its best-of-8 policy; best-of-8 and SMC at 8x.
# Usage: third.sh TASK   (resumable: ttf gap reuses finished runs, evaluations and critics)
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
.venv/bin/ttf gap --env ttfkit/metaworld-$1-v3 --demos 10 --optims adamw --seeds 3 --steps 1500 --ckpt-every 1500 \
    --episodes 50 --threads 1 --n-envs 1 --align best-of-n,smc --reward critic --particles 8 \
    --critic-refit-episodes 100 --out outputs/align6/$1-10
