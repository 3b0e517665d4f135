#!/usr/bin/env bash
# Reported runs of DoPr-AdamW at the damping its tuning picked where that is not the default (damping.py):
# 3 training seeds x 50 evaluation episodes (env seeds 100000+), the study's demos, lr and budget.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
common=(--optims dopr-adamw --seeds 3 --episodes 50 --steps 1500 --ckpt-every 500 --batch 256 --threads 1 --n-envs 8 --workers 0)
run() {  # setting env lr damping
  .venv/bin/ttf gap --env "$2" --dataset "outputs/dopr-study/$1/demos.zarr" --lr "$3" --optim-option "damping=$4" \
    "${common[@]}" --out "outputs/dopr-damping/$1-d$4-eval"
}
run peg-insert-side-5 ttfkit/metaworld-peg-insert-side-v3 1e-3 0.1
run shelf-place-10 ttfkit/metaworld-shelf-place-v3 3e-3 0.1
