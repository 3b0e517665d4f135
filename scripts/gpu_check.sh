#!/usr/bin/env bash
# GPU check of ttfkit (issue 14), about 8 minutes on one GPU:
#   1. the tests marked `cuda` (they skip without a GPU),
#   2. training throughput of the DP-size U-Net, CUDA vs CPU, in one process each,
#   3. DoPr's step-time ratio to AdamW on the U-Net on CUDA (goal <= 1.1x),
#   4. a short train on CUDA (--amp) + a 50-episode evaluation (policy on CUDA, envs on the CPU cores).
# Usage: scripts/gpu_check.sh [OUT_DIR]     (default docs/results/<today>/gpu-check)
# Needs a CUDA build of torch 2.13.0 in .venv (`python -c "import torch; print(torch.version.cuda)"`).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/results/$(date -u +%F)/gpu-check}
PY=${PY:-.venv/bin/python}
TTF=${TTF:-.venv/bin/ttf}
WORK=${WORK:-outputs/gpu_check}
export MUJOCO_GL=${MUJOCO_GL:-egl} PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-egl}
mkdir -p "$OUT" "$WORK"
log() { echo "== $(date -u +%T) $*" | tee -a "$OUT/gpu_check.log"; }

$PY - <<'PY' | tee "$OUT/device.txt"
import os, torch
assert torch.cuda.is_available(), f"torch {torch.__version__} sees no CUDA device (CUDA build: {torch.version.cuda})"
print(f"torch {torch.__version__} cuda {torch.version.cuda} gpu {torch.cuda.get_device_name(0)} cpus {os.cpu_count()}")
PY
CORES=$($PY -c "import os; print(len(os.sched_getaffinity(0)))")

log "1/4 pytest -m cuda"
timeout 180 $PY -m pytest -m cuda -q -p no:cacheprovider tests 2>&1 | tee "$OUT/pytest_cuda.txt"

log "2/4 U-Net training throughput, CUDA vs CPU (batch 256)"
timeout 90 $PY -m ttfkit.scripts.bench_policies --backbones unet --latency-backbones unet --repeats 5 --device cuda \
    --out "$OUT/bench_policies_cuda.jsonl" 2>&1 | tail -4 | tee -a "$OUT/gpu_check.log"
timeout 120 $PY -m ttfkit.scripts.bench_policies --backbones unet --latency-backbones mlp --repeats 2 --device cpu \
    --threads "$CORES" --out "$OUT/bench_policies_cpu.jsonl" 2>&1 | tail -4 | tee -a "$OUT/gpu_check.log"

log "3/4 DoPr vs AdamW step time on the U-Net, CUDA"
timeout 120 $PY -m ttfkit.scripts.bench_optim --nets unet --bases adamw --direct-nets --accuracy-nets --toy-seeds 0 \
    --reps 5 --device cuda --out "$OUT/bench_optim_cuda.jsonl" 2>&1 | tail -8 | tee -a "$OUT/gpu_check.log"

log "4/4 short train (CUDA, --amp) + 50-episode evaluation"
timeout 60 $TTF collect --env ttfkit/metaworld-reach-v3 --episodes 10 --out "$WORK/reach.zarr" --workers 4
timeout 90 $TTF train --dataset "$WORK/reach.zarr" --out "$WORK/run" --backbone unet --steps 500 --ckpt-every 500 \
    --device cuda --amp --no-progress
CKPT=$(ls -d "$WORK"/run/checkpoints/step_* | tail -1)
timeout 120 $TTF eval --policy "$CKPT" --env ttfkit/metaworld-reach-v3 --episodes 50 --device cuda --n-envs 16 \
    --workers "$CORES" --out "$OUT/eval_reach.json" 2>&1 | tail -4 | tee -a "$OUT/gpu_check.log"
log "done; figures in $OUT"
