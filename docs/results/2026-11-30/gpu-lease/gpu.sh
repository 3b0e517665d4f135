#!/usr/bin/env bash
# One device call: DoPr step-time ratios on CUDA (issue 18) + Diamond-Map distillation of 3 teachers (issue 13).
set -u
export PYTHONUNBUFFERED=1
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /tmp/pkg && ln -sfn "$PWD" /tmp/pkg/ttfkit
export PYTHONPATH=/tmp/pkg:/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, os; print('torch', torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0), 'cpus', os.cpu_count())"
TTF="python3 -m ttfkit.scripts.cli"
echo "== $(el)s bench_optim cuda"
timeout 110 python3 -m ttfkit.scripts.bench_optim --nets mlp unet --bases adamw muon --reps 5 --direct-nets mlp unet \
  --direct-reps 3 --accuracy-nets --toy-seeds 0 --device cuda --out $OUT/bench_optim_cuda.jsonl 2>&1 | grep -v "cosine to exact" | tail -40
echo "== $(el)s probe: 300 distill steps on pick-place (cuda)"
P0=$(date +%s.%N)
timeout 90 $TTF distill --checkpoint .dev/pp/teacher --dataset .dev/pp/data.zarr --out /tmp/probe --steps 300 --batch 256 \
  --lr 1e-4 --warmup 100 --eval-every 300 --diag-fraction 0.25 --trajectory-fraction 0.75 --trajectory-steps 16 \
  --device cuda --no-progress 2>&1 | tail -4
P1=$(date +%s.%N)
RATE=$(python3 -c "print(300/max($P1-$P0,1))")
LEFT=$(( 520 - $(el) ))
STEPS=$(python3 -c "print(max(1000, int($RATE*$LEFT*0.45/500)*500))")
echo "== $(el)s probe rate >= $RATE steps/s (incl. start-up); $LEFT s left; each run gets --steps $STEPS"
run() {  # name teacher-dir batch lr warmup
  $TTF distill --checkpoint .dev/$2/teacher --dataset .dev/$2/data.zarr --out /tmp/maps/$1 --steps $STEPS --batch $3 \
    --lr $4 --warmup $5 --eval-every 500 --diag-fraction 0.25 --trajectory-fraction 0.75 --trajectory-steps 16 \
    --target-ratio 2 --device cuda --no-progress > /tmp/maps/$1.log 2>&1
}
mkdir -p /tmp/maps
PIDS=""
for spec in "pp pp 256 1e-4 500" "peg peg 256 1e-4 500" "bp bp 256 1e-4 500" "pp-b1024 pp 1024 3e-4 500"; do
  run $spec & PIDS="$PIDS $!"
done
DEAD=$(( 535 - $(el) ))
( sleep $DEAD; pkill -f "scripts.cli distill" ) & KILLER=$!
wait $PIDS; kill $KILLER 2>/dev/null
echo "== $(el)s distills ended"
for n in pp peg bp pp-b1024; do
  echo "--- $n"; grep -v "^$" /tmp/maps/$n.log | tail -6
  cp /tmp/maps/$n.log /tmp/maps/$n/distill.log; (cd /tmp/maps/$n && tar czf $OUT/map-$n.tgz $(ls config.json model.safetensors curve.csv curve.png .ttfkit.json distill.log 2>/dev/null))
done
ls -la $OUT; echo "== $(el)s done"
