#!/bin/bash
# control for the refit: a critic on 200 base-policy episodes (the refit critic's data size), best-of-8 on the
# evaluation seeds. Usage: SETTING=stick10|shelf10 bash control.sh (from anywhere inside the repository)
D=$(cd "$(dirname "$0")" && pwd); cd "$(git -C "$D" rev-parse --show-toplevel)"; mkdir -p outputs/mc; export MUJOCO_GL=egl
case $SETTING in stick10) E=ttfkit/metaworld-stick-pull-v3;; shelf10) E=ttfkit/metaworld-shelf-place-v3;; esac
for seed in 0 1 2; do
  C=outputs/align/$SETTING/runs/adamw_lr0.001_seed$seed/checkpoints/step_001500
  [ -f $C/base200.safetensors ] || .venv/bin/python $D/control.py $C $E 2>&1 | grep -v Warn | tail -1
  [ -f $C/critic_base200/model.safetensors ] || .venv/bin/ttf critic --checkpoint $C --env $E --data $C/base200.safetensors \
      --episodes 200 --out $C/critic_base200 2>&1 | grep "held-out"
  .venv/bin/python $D/dev_closed.py $C $E $C/critic_base200 8 50 100000 2>&1 | grep '^{' >> outputs/mc/control_$SETTING.log
done
