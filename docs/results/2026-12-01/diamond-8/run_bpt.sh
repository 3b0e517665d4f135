#!/usr/bin/env bash
# Issue 13, a fifth teacher (run after run_peg.sh), same rule, fixed before anything ran; the distillation is stopped
# at 30 minutes if it has not reached the target by then:
#   teacher: button-press-topdown (the last quality-bar task), 30 scripted demos, default flow MLP, 2000 steps;
#   map: `ttf distill` with its defaults (the diamond-4 recipe) --target-ratio 2 --threads 2, both cores, nothing
#        else running; success = within 2x of two-step GLASS at every checked t within 30 minutes;
#   closed loop: the one-step policy (folded call) against the 10-step teacher on the same 50 evaluation episodes
#        (seeds 100000-100049), `bench_diamond closed-loop`.
# Work files in outputs/diamond8/bpt/ (not in git). Usage: run_bpt.sh teacher|distill|closed-loop
set -euo pipefail
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
d=outputs/diamond8/bpt
case "$1" in
  teacher)
    [ -d $d/data.zarr ] || taskset -c 0 .venv/bin/ttf collect --env ttfkit/metaworld-button-press-topdown-v3 --episodes 30 --out $d/data.zarr
    [ -d $d/teacher/checkpoints/step_002000 ] || taskset -c 0 .venv/bin/ttf train --dataset $d/data.zarr --out $d/teacher \
      --backbone mlp --steps 2000 --threads 1 --no-progress ;;
  distill)
    /usr/bin/time -v timeout 1800 .venv/bin/ttf distill --checkpoint $d/teacher/checkpoints/step_002000 \
      --dataset $d/data.zarr --out $d/map --target-ratio 2 --threads 2 --eval-every 2000 --no-progress \
      || echo "stopped at 30 minutes (exit $?); the map is the last checked one" ;;
  closed-loop)
    .venv/bin/python -m ttfkit.scripts.bench_diamond closed-loop --diamond $d/map --env ttfkit/metaworld-button-press-topdown-v3 \
      --episodes 50 --n-envs 10 --flow-steps 10 --threads 2 ;;
esac
