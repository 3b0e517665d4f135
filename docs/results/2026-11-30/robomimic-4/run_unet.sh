#!/bin/bash
# Lift and Can U-Net policies at the MLP's budget (issue 19): ../robomimic-3/run_unet.sh writing here, pinned to one core.
# Run from the repository root: docs/results/2026-11-30/robomimic-4/run_unet.sh
cd "$(git rev-parse --show-toplevel)"
R=docs/results/2026-11-30/robomimic-4 O=outputs/robomimic4 TASKS="lift can" STEPS=1500 BATCH=256 TAG=_1500x256 \
    exec taskset -c 1 bash docs/results/2026-11-30/robomimic-3/run_unet.sh
