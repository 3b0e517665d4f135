#!/usr/bin/env bash
# Issue 12: screen Meta-World tasks for a second pixel setting like ../../2026-11-30/align-7 (button-press-topdown).
# Same recipe per task: 50 scripted demos (seeds 0-49) with agent_pos + one 84x84 corner camera, the conv16 flow
# policy trained 1500 x 32 (training seed 0), base success on 20 SCREENING episodes (seeds 200000-200019; not the
# evaluation seeds 100000+, not the critic's 300000+). Episode limit: twice the longest demo. The rule, fixed before
# any run: the setting is the first task in the order
#   button-press coffee-button handle-press door-open window-open drawer-open plate-slide push
# whose screening success lies in [30%, 70%]. No aligned run happens before the choice.
# Usage: screen.sh TASK...   (resumable). Pinned: taskset -c N ...
set -euo pipefail
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
O=docs/results/2026-12-01/align-8/screen
mkdir -p $O
TTF=.venv/bin/ttf
for T in "$@"; do
  ENV=ttfkit/metaworld-$T-v3; D=outputs/align8/$T.zarr; R=outputs/align8/$T-pixels-seed0; C=$R/checkpoints/step_001500
  [ -d $D ] || $TTF collect --env $ENV --episodes 50 --out $D --pixels --image-size 84 --camera corner --seed 0 \
      --workers 1 > $O/collect_$T.log 2>&1
  [ -d $C ] || $TTF train --dataset $D --out $R --policy-type flow --backbone mlp \
      --steps 1500 --batch 32 --lr 1e-3 --val-fraction 0 --ckpt-every 750 --n-obs-steps 1 --horizon 16 --n-action-steps 8 \
      --threads 1 --no-progress --seed 0 --obs-keys agent_pos pixels \
      --policy-option 'encoder={"image_encoder":"conv","image_channels":16,"crop_ratio":0.9}' > $O/train_$T.log 2>&1
  MAX=$(.venv/bin/python -c "import zarr, numpy as np; e=np.asarray(zarr.open('$D', mode='r')['meta/episode_ends']); print(2*int(np.diff(e, prepend=0).max()))")
  echo "$T max_steps $MAX" > $O/max_steps_$T.txt
  [ -f $O/base_$T.json ] || $TTF eval --checkpoint $C --env $ENV --episodes 20 --episode-seed 200000 --max-steps $MAX \
      --threads 1 --n-envs 1 --workers 0 --out $O/base_$T.json > $O/base_$T.log 2>&1
  tail -3 $O/base_$T.log
done
