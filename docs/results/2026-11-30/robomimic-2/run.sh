#!/bin/bash
# Issue 19, second pass: experts on fresh seeds 200000-200049, then Can/Square flow-MLP policies from
# 50 scripted demos (seeds 0-49) with Lift's recipe, evaluated on seeds 100000-100049 with the
# evaluator's default layout (8 env slots, one worker per core). Resumable: a stage whose output
# exists is skipped. Run from the repository root: nice -n 10 bash docs/results/2026-11-30/robomimic-2/run.sh
cd "$(git rev-parse --show-toplevel)"
export MUJOCO_GL=egl
R=docs/results/2026-11-30/robomimic-2
O=outputs/robomimic2
mkdir -p $O
T() { /usr/bin/time -f "$1 wall %e s user %U s sys %S s" "${@:2}"; }
L() { echo "load $(cat /proc/loadavg)"; }
for task in ${EXPERT_TASKS:-square can lift}; do
  [ -f $R/expert_${task}_fresh.json ] && continue
  L; T "expert $task" .venv/bin/ttf eval --policy expert --env ttfkit/robomimic-$task-v0 --episodes 50 \
      --seed 200000 --workers 2 --out $R/expert_${task}_fresh.json > $O/expert_$task.log 2>&1
  grep -a "success" $O/expert_$task.log | head -2
done
for task in ${POLICY_TASKS:-can square}; do
  if [ ! -f $O/${task}_demos.zarr/.done ]; then
    L; T "collect $task" .venv/bin/ttf collect --env ttfkit/robomimic-$task-v0 --episodes 50 \
        --out $O/${task}_demos.zarr --seed 0 --workers 2 > $O/collect_$task.log 2>&1 && touch $O/${task}_demos.zarr/.done
    tail -2 $O/collect_$task.log
  fi
  if [ ! -d $O/${task}_flow_mlp/checkpoints/step_001500 ]; then
    L; T "train $task" .venv/bin/ttf train --dataset $O/${task}_demos.zarr --out $O/${task}_flow_mlp --policy flow \
        --backbone mlp --steps 1500 --batch 256 --lr 1e-3 --ckpt-every 500 --threads 1 --no-progress \
        $( [ -d $O/${task}_flow_mlp ] && echo --resume ) > $O/train_$task.log 2>&1
    tail -2 $O/train_$task.log
  fi
  if [ ! -f $R/policy_${task}_flow_mlp.json ]; then
    L; T "eval $task" .venv/bin/ttf eval --policy $O/${task}_flow_mlp/checkpoints/step_001500 \
        --env ttfkit/robomimic-$task-v0 --episodes 50 --seed 100000 --workers 2 \
        --out $R/policy_${task}_flow_mlp.json > $O/eval_$task.log 2>&1
    grep -a "success" $O/eval_$task.log | head -2
  fi
done
L
