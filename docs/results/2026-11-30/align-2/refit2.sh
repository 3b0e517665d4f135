#!/bin/bash
# current code: the original critic and the refitted critic, best-of-8 on the evaluation seeds
D=$(cd "$(dirname "$0")" && pwd); cd "$(git -C "$D" rev-parse --show-toplevel)"; mkdir -p outputs/mc; export MUJOCO_GL=egl
for s in $SETTINGS; do
  case $s in stick10) E=ttfkit/metaworld-stick-pull-v3;; shelf10) E=ttfkit/metaworld-shelf-place-v3;; peg5) E=ttfkit/metaworld-peg-insert-side-v3;; esac
  for seed in 0 1 2; do
    C=outputs/align/$s/runs/adamw_lr0.001_seed$seed/checkpoints/step_001500
    for k in critic critic_refit; do
      [ -f $C/$k/model.safetensors ] || continue
      tag=$( [ $k = critic ] && echo critic-blocks || echo ${k//_/-} )
      [ -f $C/align_extra/best-of-n-$tag-x8.json ] && continue
      .venv/bin/python $D/dev_closed.py $C $E $C/$k 8 50 100000 2>&1 | grep '^{' >> outputs/mc/refit2_$s.log
    done
  done
done
