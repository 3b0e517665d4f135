#!/usr/bin/env bash
# The CPU study of 2026-11-30 (issue 18): cheap AP (DoPr default, rank 64) on stick-pull from 10 demos, the
# setting where exact AP won on 2026-11-28, with that study's exact command otherwise; then exact AP's seed 0
# retrained (1 evaluation episode per checkpoint) to check that the 2026-11-28 runs reproduce bit for bit.
# Resumable: rerunning skips finished runs and evaluations.
set -euo pipefail
export MUJOCO_GL=egl
OUT=${OUT:-outputs/dopr1130}
common=(--env ttfkit/metaworld-stick-pull-v3 --steps 1500 --ckpt-every 500 --threads 1 --n-envs 1)
ttf gap "${common[@]}" --demos 10 --optims dopr-adamw --seeds 3 --eval-episodes 50 --out "$OUT/stick10_cheap"
ttf gap "${common[@]}" --dataset "$OUT/stick10_cheap/demos.zarr" --optims dopr-adamw --optim-option rank=null \
    --seeds 1 --eval-episodes 1 --out "$OUT/stick10_exact_check"
