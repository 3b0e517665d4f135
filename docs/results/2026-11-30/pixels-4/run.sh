#!/usr/bin/env bash
# Aligned evaluation of a pixel policy (issue 17 x issue 12): button-press-topdown, 84x84 corner camera + agent_pos,
# the 1500-step conv policy of ../pixels (46% on 50 episodes). From the repository root; resumable (skips done JSONs).
# Usage: bash docs/results/2026-11-30/pixels-4/run.sh [EPISODES]
set -euo pipefail
export MUJOCO_GL=egl PYOPENGL_PLATFORM=egl
N=${1:-10}
CKPT=outputs/pixels/runs/button-press-topdown-pixels/checkpoints/step_001500
ENV=ttfkit/metaworld-button-press-topdown-v3
OUT=docs/results/2026-11-30/pixels-4
TTF="nice -n 5 .venv/bin/ttf"
COMMON="--checkpoint $CKPT --env $ENV --episodes $N --max-steps 150 --threads 1"  # 150: the limit of ../pixels' evaluation
run() {  # run NAME COMMAND...: the command's output in NAME.log, its wall time in NAME.time
  local name=$1; shift
  [ -f "$OUT/$name.json" ] && return 0
  local start=$(date +%s.%N)
  "$@" --out "$OUT/$name.json" > "$OUT/$name.log" 2>&1
  echo "$(date +%s.%N) - $start" | bc > "$OUT/$name.time"
}
# base policy, in-process, one env slot (as the aligner runs)
run eval $TTF eval $COMMON --n-envs 1 --workers 0
# best-of-1 = the base policy; its reward is the rollout look-ahead of the chunk alone (horizon 0: 8 steps)
run bo1-rollout-h0 $TTF align $COMMON --method best-of-n --particles 1 --reward rollout --horizon 0
# best-of-4 with the rollout reward (issue 12's reference: chunk + base policy for 120 steps, 2 flow steps)
run bo4-rollout-h120 $TTF align $COMMON --method best-of-n --particles 4 --reward rollout --horizon 120
# the base policy through the aligner (method none: no reward), for its wall time per episode in the same harness
run none $TTF align $COMMON --method none
# --- stage 2: 50 episodes (seeds 100000-100049) for the base, best-of-4 rollout, and best-of-4 with a critic
CRITIC=outputs/pixels4/critic  # weights and rollouts (not committed); report.json and calibration.png copied here
if [ ! -f $CRITIC/model.safetensors ]; then
  $TTF critic --checkpoint $CKPT --env $ENV --episodes 100 --max-steps 150 --threads 1 --out $CRITIC > $OUT/critic.log 2>&1
fi
cp $CRITIC/report.json $OUT/critic_report.json; cp $CRITIC/calibration.png $OUT/critic_calibration.png
run bo4-critic-50 $TTF align --checkpoint $CKPT --env $ENV --episodes 50 --max-steps 150 --threads 1 \
    --method best-of-n --particles 4 --reward critic --critic $CRITIC
run eval-50 $TTF eval --checkpoint $CKPT --env $ENV --episodes 50 --max-steps 150 --threads 1 --n-envs 1 --workers 0
# episodes 100010-100049 of best-of-4 rollout (100000-100009 are bo4-rollout-h120.json)
run bo4-rollout-h120-b $TTF align --checkpoint $CKPT --env $ENV --episodes 40 --episode-seed 100010 --max-steps 150 \
    --threads 1 --method best-of-n --particles 4 --reward rollout --horizon 120
