#!/usr/bin/env bash
# One-step policy (Diamond Map at t=0) vs the 10-step teacher and 1-step teacher, 50 evaluation episodes per task.
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
M=outputs/diamond2/gpu-maps
R=outputs/diamond2/results; mkdir -p $R
for spec in "pp-b1024-s1500 pick-place" "peg peg-insert-side" "bp button-press-topdown"; do
  set -- $spec
  grep -q flow-1 $R/closed_loop_$2.log 2>/dev/null && continue
  .venv/bin/python -m ttfkit.scripts.bench_diamond closed-loop --diamond $M/$1 --env ttfkit/metaworld-$2-v3 \
     --episodes 50 --n-envs 10 --flow-steps 10 1 --threads 1 > $R/closed_loop_$2.log 2>&1
done
echo ONESTEP DONE
