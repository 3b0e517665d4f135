#!/bin/bash
# TTF-gap study on Square with 3 training seeds (issue 19): AdamW vs DoPr-AdamW, the recipe of
# ../robomimic-2/run_gap_square.sh (50 scripted Square demos, flow MLP, batch 256, lr 1e-3 for both,
# 3000 steps, checkpoints every 1000, 20 episodes per checkpoint on seeds 100000-100019), then the other
# 30 episodes (seeds 100020-100049) of each final checkpoint so that each final has 50.
# Seed 0's runs are a copy of robomimic-2's (outputs/robomimic2/gap_square, left as it is):
#   cp -a outputs/robomimic2/gap_square outputs/robomimic3/gap_square
# Seeds are added one pair at a time (--seeds 2, its extra episodes, then --seeds 3), so that a stop
# leaves complete AdamW/DoPr pairs. Resumable: rerunning skips trained runs, evaluated checkpoints and
# existing extra-episode files.
# Run from the repository root: nice -n 5 bash docs/results/2026-11-30/robomimic-3/run_gap_square.sh
cd "$(git rev-parse --show-toplevel)"
export MUJOCO_GL=egl
R=docs/results/2026-11-30/robomimic-3
O=outputs/robomimic3/gap_square
for seeds in 2 3; do
  echo "load $(cat /proc/loadavg) $(date -u +%H:%M:%S) gap --seeds $seeds"
  /usr/bin/time -f "gap seeds=$seeds wall %e s user %U s sys %S s" .venv/bin/ttf gap \
      --dataset outputs/robomimic2/square_demos.zarr --optims adamw,dopr-adamw --lr 1e-3 --seeds $seeds \
      --steps 3000 --ckpt-every 1000 --batch 256 --backbone mlp --eval-episodes 20 --workers 2 --threads 1 \
      --out $O || exit 1
  s=$((seeds - 1))
  for opt in adamw dopr-adamw; do
    f=$R/gap_square_${opt}_seed${s}_step3000_seeds100020-100049.json
    [ -f "$f" ] && continue
    echo "load $(cat /proc/loadavg) $(date -u +%H:%M:%S) extra $opt seed $s"
    /usr/bin/time -f "eval $opt seed $s wall %e s" .venv/bin/ttf eval \
        --checkpoint $O/runs/${opt}_lr0.001_seed${s}/checkpoints/step_003000 \
        --env ttfkit/robomimic-square-v0 --episodes 30 --seed 100020 --workers 2 --out "$f" || exit 1
  done
done
echo "load $(cat /proc/loadavg) $(date -u +%H:%M:%S) done"
