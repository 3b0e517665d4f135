#!/bin/bash
# a second refit round (on the first refit's data + 100 more aligned episodes), stick-pull, then best-of-8 on evaluation seeds
D=$(cd "$(dirname "$0")" && pwd); cd "$(git -C "$D" rev-parse --show-toplevel)"; mkdir -p outputs/mc; export MUJOCO_GL=egl
# (ran after refit.sh stick10/shelf10 and refit2.sh)
for seed in 0 1 2; do
  C=outputs/align/stick10/runs/adamw_lr0.001_seed$seed/checkpoints/step_001500
  [ -f $C/critic_refit2/model.safetensors ] || .venv/bin/ttf critic --checkpoint $C --env ttfkit/metaworld-stick-pull-v3 \
      --data $C/critic_refit/rollouts.safetensors --episodes 200 --refit-episodes 100 --refit-particles 8 --n-envs 8 \
      --out $C/critic_refit2 2>&1 | tr '\r' '\n' | grep -v "ep/s\|Warn" | tail -3
  .venv/bin/python $D/dev_closed.py $C ttfkit/metaworld-stick-pull-v3 $C/critic_refit2 8 50 100000 2>&1 | grep '^{' >> outputs/mc/refit2_stick10.log
done
