#!/bin/bash
# State flow policies with the U-Net backbone (issue 19) from the same 50 scripted demos (seeds 0-49) as the
# flow-MLP policies: Square and Can from ../robomimic-2/run.sh (outputs/robomimic2/), Lift from
# ../robomimic/ (outputs/robomimic/). Reduced budget against the MLP's 1500 steps at batch 256:
# STEPS (1000) steps at batch BATCH (128), i.e. a third of the MLP's training samples; everything else
# as the MLP recipe (flow, AdamW lr 1e-3, 100 warm-up steps, cosine to 0, EMA, training seed 0, default
# U-Net: down_dims 64/128/256). 50 evaluation episodes on seeds 100000-100049, 2 worker processes.
# Tasks in the order TASKS (default: square lift can). TAG (default empty) is appended to the run and
# result names, for another budget, e.g. TASKS=square STEPS=1500 BATCH=256 TAG=_1500x256 (the MLP's);
# SEED (default 0) is the training seed (TAG=_1500x256_seed1 SEED=1 for a second one).
# Resumable: a stage whose output exists is skipped, a stopped training continues from its newest checkpoint.
# Run from the repository root: nice -n 5 bash docs/results/2026-11-30/robomimic-3/run_unet.sh
cd "$(git rev-parse --show-toplevel)"
export MUJOCO_GL=egl
R=${R:-docs/results/2026-11-30/robomimic-3}   # results folder (robomimic-4 passes its own)
O=${O:-outputs/robomimic3}
STEPS=${STEPS:-1000}
BATCH=${BATCH:-128}
SEED=${SEED:-0}
T() { /usr/bin/time -f "$1 wall %e s user %U s sys %S s" "${@:2}"; }
L() { echo "load $(cat /proc/loadavg) $(date -u +%H:%M:%S) $1"; }
for task in ${TASKS:-square lift can}; do
  case $task in lift) data=outputs/robomimic/lift_demos.zarr ;; *) data=outputs/robomimic2/${task}_demos.zarr ;; esac
  run=$O/${task}_flow_unet${TAG}
  last=$run/checkpoints/$(printf step_%06d $STEPS)
  if [ ! -d $last ]; then
    L "train $task"
    T "train $task" .venv/bin/ttf train --dataset $data --out $run --policy-type flow --backbone unet \
        --steps $STEPS --batch $BATCH --seed $SEED --lr 1e-3 --ckpt-every $((STEPS / 2)) --threads 1 --no-progress \
        $( [ -d $run/checkpoints ] && echo --resume ) > $O/train_${task}_unet${TAG}.log 2>&1 || exit 1
    tail -2 $O/train_${task}_unet${TAG}.log
  fi
  if [ ! -f $R/policy_${task}_flow_unet${TAG}.json ]; then
    L "eval $task"
    T "eval $task" .venv/bin/ttf eval --checkpoint $last --env ttfkit/robomimic-$task-v0 --episodes 50 \
        --seed 100000 --workers 2 --threads 1 --out $R/policy_${task}_flow_unet${TAG}.json > $O/eval_${task}_unet${TAG}.log 2>&1 \
        || exit 1
    grep -a "success" $O/eval_${task}_unet${TAG}.log | head -2
  fi
  cp $run/metrics.csv $R/policy_${task}_flow_unet${TAG}_metrics.csv
  cp $run/train_config.json $R/policy_${task}_flow_unet${TAG}_train_config.json
done
L done
