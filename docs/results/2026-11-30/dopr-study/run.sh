#!/usr/bin/env bash
# The fair-protocol DoPr study of issue 18 on one CPU core (resumable: rerun to continue).
# Each setting: lr grid {1e-3, 3e-3, 1e-2} per optimizer, one tuning run per (optimizer, lr) with training
# seed 1000, picked on 20 tuning episodes (env seeds 50000+); then 3 training seeds x 50 evaluation
# episodes (env seeds 100000+) at the picked lr only.
# Usage: run.sh SETTING [SETTING ...]   (names below; outputs and raw logs under $OUT)
# A setting's flags come after `common` and override it (argparse: the last value wins).
set -euo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-outputs/dopr-study}
mkdir -p "$OUT/logs"
export MUJOCO_GL=egl
common=(--lr 1e-3,3e-3,1e-2 --tune-episodes 20 --tune-seed 1000 --seeds 3 --episodes 50 --steps 1500
        --ckpt-every 500 --batch 256 --threads 1 --n-envs 8 --workers 0)
setting() {
  case "$1" in
    stick-pull-10) echo "--env ttfkit/metaworld-stick-pull-v3 --demos 10 --optims adamw,dopr-adamw" ;;
    peg-insert-side-5) echo "--env ttfkit/metaworld-peg-insert-side-v3 --demos 5 --optims adamw,dopr-adamw" ;;
    shelf-place-10) echo "--env ttfkit/metaworld-shelf-place-v3 --demos 10 --optims adamw,dopr-adamw" ;;
    peg-insert-side-25) echo "--env ttfkit/metaworld-peg-insert-side-v3 --demos 25 --optims adamw,dopr-adamw" ;;
    stick-pull-10-muon) echo "--env ttfkit/metaworld-stick-pull-v3 --demos 10 --optims muon,dopr-muon" ;;
    shelf-place-10-noise) echo "--env ttfkit/metaworld-shelf-place-v3 --demos 10 --demo-noise 0.1 --optims adamw,dopr-adamw" ;;
    # U-Net (4.9M params) trains at ~2 steps/s on one busy core (MLP: 16-19), so this setting gets 400 steps,
    # checkpoints every 200, and a 2-value lr grid (the flags below override `common`'s).
    stick-pull-10-unet) echo "--env ttfkit/metaworld-stick-pull-v3 --demos 10 --optims adamw,dopr-adamw --backbone unet
                              --steps 400 --ckpt-every 200 --lr 3e-4,1e-3" ;;
    peg-insert-side-5-muon) echo "--env ttfkit/metaworld-peg-insert-side-v3 --demos 5 --optims muon,dopr-muon" ;;
    *) echo "unknown setting $1" >&2; exit 2 ;;
  esac
}
for name in "$@"; do
  echo "=== $name start $(date -u +%FT%TZ) loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  # shellcheck disable=SC2046
  .venv/bin/ttf gap "${common[@]}" $(setting "$name") --out "$OUT/$name" >> "$OUT/logs/$name.log" 2>&1  # appended: a resumed setting keeps its earlier log
  echo "=== $name done $(date -u +%FT%TZ) loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
done
