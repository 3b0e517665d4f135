#!/usr/bin/env bash
# Reported runs of DoPr-Muon at the damping its tuning picked where that is not the default (damping.jsonl):
# 3 training seeds x 50 evaluation episodes (env seeds 100000+), the study's demos, lr and budget.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
common=(--optims dopr-muon --seeds 3 --episodes 50 --steps 1500 --ckpt-every 500 --batch 256 --threads 1 --n-envs 8 --workers 0)
run() {  # setting env lr damping
  .venv/bin/ttf gap --env "$2" --dataset "outputs/dopr-study/$1/demos.zarr" --lr "$3" --optim-option "damping=$4" \
    "${common[@]}" --out "outputs/dopr-damping-2/$1-d$4-eval"
}
case "${1:-all}" in  # the two settings ran at the same time, one per core
  stick|all) run stick-pull-10-muon ttfkit/metaworld-stick-pull-v3 1e-3 0.001 ;;&
  peg|all) run peg-insert-side-5-muon ttfkit/metaworld-peg-insert-side-v3 1e-3 0.001 ;;
esac
