#!/bin/bash
# refit once on the critic-aligned policy's rollouts (100 episodes, best-of-8), then best-of-8 on the evaluation seeds
set -e
D=$(cd "$(dirname "$0")" && pwd); cd "$(git -C "$D" rev-parse --show-toplevel)"; mkdir -p outputs/mc
export MUJOCO_GL=egl
for s in $SETTINGS; do
  case $s in stick10) E=ttfkit/metaworld-stick-pull-v3;; shelf10) E=ttfkit/metaworld-shelf-place-v3;; peg5) E=ttfkit/metaworld-peg-insert-side-v3;; esac
  for seed in 0 1 2; do
    C=outputs/align/$s/runs/adamw_lr0.001_seed$seed/checkpoints/step_001500
    [ -f $C/critic_refit/model.safetensors ] || .venv/bin/ttf critic --checkpoint $C --env $E --data $C/critic/rollouts.safetensors \
        --episodes 100 --refit-episodes 100 --refit-particles 8 --n-envs 8 --out $C/critic_refit 2>&1 | grep -v Warn | tr '\r' '\n' | grep -v "it/s\|ep/s\]" | tail -4
    grep -q '"seed": 100000' outputs/mc/refit_$s.log 2>/dev/null && grep -q "seed$seed/" outputs/mc/refit_$s.log && continue
    .venv/bin/python $D/dev_closed.py $C $E $C/critic_refit 8 50 100000 2>&1 | grep '^{' >> outputs/mc/refit_$s.log
  done
done
