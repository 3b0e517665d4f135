#!/usr/bin/env bash
# The CPU study of 2026-11-30 (issue 18): cheap AP (DoPr's new default, rank 64) on stick-pull from 10 demos,
# the setting where exact AP won on 2026-11-28, with that study's command otherwise (same demos: collection
# seed 0; same model, schedule, lr 1e-3, training seeds 0-2, evaluation seeds 100000-100049).
# Resumable: rerunning skips finished runs and evaluations. Then the settings report over the settings
# measured on 2026-11-28 (exact AP, their checkpoints.csv).
# On 2026-11-30 only seed 0's training finished here (see eval_final.sh and README.md); the settings report
# was made from 2026-11-28's directories alone.
set -euo pipefail
export MUJOCO_GL=egl
OUT=${OUT:-outputs/dopr1130}
SEEDS=${SEEDS:-3}
ttf gap --env ttfkit/metaworld-stick-pull-v3 --steps 1500 --ckpt-every 500 --threads 1 --n-envs 1 \
    --demos 10 --optims dopr-adamw --seeds "$SEEDS" --eval-episodes 50 --out "$OUT/stick10_cheap"
R=docs/results/2026-11-28
python -m ttfkit.scripts.sweep_report \
    --setting "stick-pull 10=$R/study-stick10" \
    --setting "shelf-place 10=$R/study-shelf10" \
    --setting "shelf-place 10, lr grid=$R/study-shelf10-lrgrid" \
    --setting "shelf-place 10, Muon=$R/study-shelf10-muon" \
    --setting "peg-insert-side 5=$R/study-peg5" \
    --setting "shelf-place 5, 2x30=$R/study-shelf5" \
    --out docs/results/2026-11-30/dopr/settings
