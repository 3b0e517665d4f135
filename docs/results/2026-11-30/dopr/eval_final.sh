#!/usr/bin/env bash
# What the CPU allowed of the study (run_study.sh was stopped after seed 0's training: 60 s per evaluation
# episode at load 16): cheap AP's seed-0 final checkpoint (step 1500) on evaluation episodes 100000+,
# in chunks of 10 episodes so that whatever finished by the deadline counts.
set -euo pipefail
export MUJOCO_GL=egl
CKPT=${CKPT:-outputs/dopr1130/stick10_cheap/runs/dopr-adamw_lr0.001_seed0/checkpoints/step_001500}
for start in 0 10 20 30 40; do
    ttf eval --policy "$CKPT" --env ttfkit/metaworld-stick-pull-v3 --episodes 10 --seed $((100000 + start)) \
        --n-envs 1 --workers 0 --device cpu --out "$CKPT/eval_chunk_$start.json"
done
