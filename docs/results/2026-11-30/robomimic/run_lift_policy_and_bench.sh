#!/bin/bash
# Lift: 50 scripted demos -> flow MLP policy -> closed-loop eval (50 episodes), then the throughput bench.
cd "$(git rev-parse --show-toplevel)"
export MUJOCO_GL=egl
R=docs/results/2026-11-30/robomimic
O=outputs/robomimic
mkdir -p $O
T() { /usr/bin/time -f "$1 wall %e s user %U s sys %S s" "${@:2}"; }
echo "load before: $(cat /proc/loadavg)"
T collect nice -n 10 .venv/bin/ttf collect --env ttfkit/robomimic-lift-v0 --episodes 50 --out $O/lift_demos.zarr --seed 0 > $O/collect.log 2>&1; tail -3 $O/collect.log
echo "load: $(cat /proc/loadavg)"
T train nice -n 10 .venv/bin/ttf train --dataset $O/lift_demos.zarr --out $O/lift_flow_mlp --policy flow --backbone mlp --steps 1500 --batch 256 --lr 1e-3 --ckpt-every 500 --threads 1 --no-progress > $O/train.log 2>&1; tail -3 $O/train.log
echo "load: $(cat /proc/loadavg)"
T eval nice -n 10 .venv/bin/ttf eval --policy $O/lift_flow_mlp/checkpoints/step_001500 --env ttfkit/robomimic-lift-v0 --episodes 50 --n-envs 1 --out $R/policy_lift_flow_mlp.json > $O/eval.log 2>&1; grep -a "success [0-9]" $O/eval.log
echo "load: $(cat /proc/loadavg)"
T bench nice -n 10 .venv/bin/python -m ttfkit.scripts.bench_robomimic --steps 150 --repeats 3 --out $R/bench.jsonl > $O/bench.log 2>&1; cat $O/bench.log
echo "load after: $(cat /proc/loadavg)"
