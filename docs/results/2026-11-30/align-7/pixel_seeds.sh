#!/usr/bin/env bash
# Issue 12: the pixel button-press setting with more training seeds. ../pixels-4 aligned ../pixels' pixel policy
# (button-press-topdown, 50 scripted demos, agent_pos + one 84x84 corner camera, conv16 encoder, 1500 x 32, training
# seed 0: 23/50) with a critic fitted on 100 of its own rollouts: best-of-4 39/50. That setting was first looked at
# for issue 17, so seed 0 was not chosen blind; training seeds 1 and 2 here are new. Per seed: the same training
# recipe (../pixels), `ttf critic` on 100 base rollouts (its reserved seeds 300000+), the base on the 50 evaluation
# episodes (seeds 100000-100049, 150-step limit), best-of-4 and best-of-8 with that critic (40 and 80 NFE per chunk;
# 8x is the budget align-3's development-seed rule chose for every setting). Seed 0 gets its best-of-8 cell too.
# Usage: pixel_seeds.sh SEED...   (resumable: finished files are skipped). Pinned: taskset -c 1 ...
set -euo pipefail
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
ENV=ttfkit/metaworld-button-press-topdown-v3
O=docs/results/2026-11-30/align-7
TTF=.venv/bin/ttf
for SEED in "$@"; do
  if [ "$SEED" = 0 ]; then
    C=outputs/pixels/runs/button-press-topdown-pixels/checkpoints/step_001500; CR=outputs/pixels4/critic
  else
    R=outputs/align7/bpt-pixels-seed$SEED; C=$R/checkpoints/step_001500; CR=outputs/align7/critic-seed$SEED
    [ -d $C ] || $TTF train --dataset outputs/pixels/button-press-topdown.zarr --out $R --policy-type flow --backbone mlp \
        --steps 1500 --batch 32 --lr 1e-3 --val-fraction 0 --ckpt-every 750 --n-obs-steps 1 --horizon 16 --n-action-steps 8 \
        --threads 1 --no-progress --seed $SEED --obs-keys agent_pos pixels \
        --policy-option 'encoder={"image_encoder":"conv","image_channels":16,"crop_ratio":0.9}' > $O/train_seed$SEED.log 2>&1
    [ -f $CR/model.safetensors ] || $TTF critic --checkpoint $C --env $ENV --episodes 100 --max-steps 150 --threads 1 \
        --out $CR > $O/critic_seed$SEED.log 2>&1
    cp $CR/report.json $O/critic_report_seed$SEED.json
    [ -f $O/base_seed$SEED.json ] || $TTF eval --checkpoint $C --env $ENV --episodes 50 --max-steps 150 --threads 1 \
        --n-envs 1 --workers 0 --out $O/base_seed$SEED.json > $O/base_seed$SEED.log 2>&1
  fi
  for N in 4 8; do
    [ "$SEED" = 0 ] && [ $N = 4 ] && continue   # ../pixels-4/bo4-critic-50.json
    [ -f $O/bo${N}_critic_seed$SEED.json ] || $TTF align --checkpoint $C --env $ENV --episodes 50 --max-steps 150 \
        --threads 1 --method best-of-n --particles $N --reward critic --critic $CR \
        --out $O/bo${N}_critic_seed$SEED.json > $O/bo${N}_critic_seed$SEED.log 2>&1
  done
done
