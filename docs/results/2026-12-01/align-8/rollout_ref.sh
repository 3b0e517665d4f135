#!/usr/bin/env bash
# Issue 12, second pixel setting: the simulator reference (not deployable), best-of-4 with the rollout reward
# (candidate chunk, then the base policy with 2 flow steps for up to 120 steps; success first, then the shaped
# return), as ../../2026-11-30/align-7/pixel_rollout_ref.sh. Usage: rollout_ref.sh TASK SEED   (resumable)
set -euo pipefail
cd "$(dirname "$0")/../../../.."
export MUJOCO_GL=egl
T=$1; D=outputs/align8/$T.zarr; O=docs/results/2026-12-01/align-8/$T
MAX=$(.venv/bin/python -c "import zarr, numpy as np; e=np.asarray(zarr.open('$D', mode='r')['meta/episode_ends']); print(2*int(np.diff(e, prepend=0).max()))")
C=outputs/align8/$T-pixels-seed$2/checkpoints/step_001500
[ -f $O/bo4_rollout_seed$2.json ] || .venv/bin/ttf align --checkpoint $C --env ttfkit/metaworld-$T-v3 \
    --episodes 50 --max-steps $MAX --threads 1 --method best-of-n --particles 4 --reward rollout --horizon 120 \
    --rollout-flow-steps 2 --out $O/bo4_rollout_seed$2.json > $O/bo4_rollout_seed$2.log 2>&1
