#!/usr/bin/env bash
# Same-code, same-load AdamW baseline for the DoPr comparison: pixels-2's train_button-press.sh re-run with
# today's code into outputs/pixels3 (same flags, --steps 10000 so the lr schedule is the same), stopped after its
# step-5000 checkpoint (deadline), then evaluated like the others. Its losses are compared with pixels-2's
# metrics step by step (does the old AdamW run reproduce?). Resumable.
set -e
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
R=outputs/pixels3/bpt-conv16-10k-adamw-rerun
ARGS="--dataset outputs/pixels/button-press-topdown.zarr --out $R --policy flow --backbone mlp --optim adamw --steps 10000 --batch 32 \
  --lr 1e-3 --val-fraction 0 --ckpt-every 2500 --n-obs-steps 1 --horizon 16 --n-action-steps 8 --threads 1 --no-progress --seed 0 \
  --obs-keys agent_pos pixels"
if [ ! -d $R/checkpoints/step_005000 ]; then
  if [ -d $R/checkpoints ]; then .venv/bin/ttf train --resume $R & else
  .venv/bin/ttf train $ARGS --policy-option 'encoder={"image_encoder":"conv","image_channels":16,"crop_ratio":0.9}' & fi
  P=$!
  until [ -f $R/checkpoints/step_005000/model.safetensors ] || ! kill -0 $P 2>/dev/null; do sleep 5; done
  sleep 5; kill $P 2>/dev/null || true; wait $P || true
fi
[ -f outputs/pixels3/eval_button-press-topdown_adamw-rerun_step005000.json ] || \
.venv/bin/ttf eval --checkpoint $R/checkpoints/step_005000 --env ttfkit/metaworld-button-press-topdown-v3 --episodes 50 --n-envs 8 \
  --workers 0 --max-steps 150 --threads 1 --out outputs/pixels3/eval_button-press-topdown_adamw-rerun_step005000.json
echo RERUN DONE
