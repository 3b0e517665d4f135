#!/usr/bin/env bash
# Idle-core re-measurements of the benchmarks that earlier passes could only run at load 9-16 (issues 17, 19).
# Each pinned to core 0 with one torch thread, while core 1 ran one training job (robomimic-4's U-Nets).
set -euo pipefail
export MUJOCO_GL=egl
PY=.venv/bin/python
P=docs/results/2026-11-30/pixels-idle
R=docs/results/2026-11-30/robomimic-4
taskset -c 0 $PY -m ttfkit.scripts.bench_encoders --batch 32 --steps 5 --latency-repeats 20 --threads 1 \
    > $P/bench_encoders.jsonl 2> $P/bench_encoders.err
taskset -c 0 $PY -m ttfkit.scripts.bench_cameras --steps 200 --size 84 --repeats 3 > $P/bench_cameras.jsonl 2> $P/bench_cameras.err
taskset -c 0 $PY -m ttfkit.scripts.bench_robomimic --tasks lift,can,square,tool-hang,transport --camera-tasks lift,square \
    --eval-tasks "" --steps 150 --repeats 3 --out $R/bench_render_idle.jsonl > $R/bench_render_idle.log 2>&1
