#!/bin/bash
# Reduced TTF-gap study on Square (issue 19): AdamW vs DoPr-AdamW on the 50 scripted Square demos of
# run.sh (seeds 0-49), flow MLP, Lift's recipe (batch 256, lr 1e-3 for both optimizers, not tuned) but
# 3000 steps (Square's val loss was still falling at 1500), checkpoints every 1000 steps, EPISODES
# closed-loop episodes per checkpoint (seeds 100000+). SEEDS training seeds (rerun with more to add).
# The env comes from the store (ttf collect's env_id): no --env. Resumable; rerun with a larger
# EPISODES to evaluate only the missing episodes.
# Run from the repository root: nice -n 10 bash docs/results/2026-11-30/robomimic-2/run_gap_square.sh
cd "$(git rev-parse --show-toplevel)"
export MUJOCO_GL=egl
echo "load $(cat /proc/loadavg)"
/usr/bin/time -f "gap wall %e s" .venv/bin/ttf gap --dataset outputs/robomimic2/square_demos.zarr \
    --optims adamw,dopr-adamw --lr 1e-3 --seeds ${SEEDS:-3} --steps 3000 --ckpt-every 1000 --batch 256 \
    --backbone mlp --eval-episodes ${EPISODES:-20} --workers 2 --threads 1 --out outputs/robomimic2/gap_square
echo "load $(cat /proc/loadavg)"
