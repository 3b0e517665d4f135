#!/usr/bin/env bash
# Issue 12: a second critic refit round on shelf-place (align-2's chain2.sh recipe for stick-pull, unchanged: the
# first refit's 200 episodes plus 100 more of its best-of-8 policy), then best-of-8 on the development seeds
# 330000-330049 and on the evaluation seeds 100000-100049 (both reported, whatever they show). Resumable.
set -e
D=$(cd "$(dirname "$0")" && pwd); cd "$D/../../../.."; export MUJOCO_GL=egl
mkdir -p outputs/align6
for seed in 0 1 2; do
  C=outputs/align/shelf10/runs/adamw_lr0.001_seed$seed/checkpoints/step_001500
  [ -f $C/critic_refit2/model.safetensors ] || .venv/bin/ttf critic --checkpoint $C --env ttfkit/metaworld-shelf-place-v3 \
      --data $C/critic_refit/rollouts.safetensors --episodes 200 --refit-episodes 100 --refit-particles 8 --n-envs 8 \
      --out $C/critic_refit2 2>&1 | tr '\r' '\n' | grep -v "ep/s\|Warn" | tail -3
  for first in 330000 100000; do
    grep -q "\"seed$seed-$first\"" outputs/align6/shelf_refit2.jsonl 2>/dev/null && continue
    .venv/bin/python $D/../align-2/dev_closed.py $C ttfkit/metaworld-shelf-place-v3 $C/critic_refit2 8 50 $first 2>&1 \
      | grep '^{' | sed "s/^{/{\"tag\": \"seed$seed-$first\", /" >> outputs/align6/shelf_refit2.jsonl
  done
done
echo SHELF REFIT2 DONE
