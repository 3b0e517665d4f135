"""Chunks of the 10-step teacher and the one-step policy for fixed observations (batches of 1 and 11, float64
inputs) and noise, saved to OUT; with REF, also compared with a saved set, bit for bit.

Usage: python check_same_chunks.py MAP OUT [REF]
"""
import sys

import torch

from ttfkit.align.one_step import OneStepPolicy
from ttfkit.align.policy_diamond import load_diamond

torch.set_num_threads(1)
dmap, teacher = load_diamond(sys.argv[1])
one = OneStepPolicy(teacher, dmap)
cfg = teacher.config
g = torch.Generator().manual_seed(0)
out = {}
with torch.inference_mode():
    for n in (1, 11):
        obs = {k: torch.randn(n, cfg.n_obs_steps, *s, generator=g, dtype=torch.float64) for k, s in cfg.obs_shapes.items()}
        noise = torch.randn(n, cfg.horizon, cfg.action_dim, generator=g)
        for name, p in (("flow10", teacher), ("one_step", one)):
            out[f"{name}_{n}"] = p.predict_action_chunk(obs, generator=torch.Generator().manual_seed(n), noise=noise)
torch.save(out, sys.argv[2])
if len(sys.argv) > 3:
    ref = torch.load(sys.argv[3])
    same = {k: torch.equal(v, ref[k]) for k, v in out.items()}
    print("bit-identical:", same)
    if not all(same.values()):
        sys.exit(f"chunks differ: {same}")
else:
    print("saved", sorted(out))
