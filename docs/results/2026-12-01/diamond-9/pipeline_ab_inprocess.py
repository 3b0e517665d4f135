"""Issue 13: the joined observation pipeline (this commit) against the per-key one it replaced (b70fbc6's
predict_action_chunk, written out below), in one process: the same policy object, alternating blocks of 25 calls,
batch 1, one thread. Prints per-round medians and the per-round ratio old/new for the one-step policy and the
10-step teacher, and checks the chunks are equal bit for bit.

Usage: python pipeline_ab_inprocess.py MAP ROUNDS
"""
import statistics
import sys
import time

import torch

from ttfkit.align.one_step import OneStepPolicy
from ttfkit.align.policy_diamond import load_diamond
from ttfkit.policies.base import _obs_float32, _pad_rows

torch.set_num_threads(1)


def old_chunk(p, obs_batch, generator=None, noise=None):
    """b70fbc6: per-key check, per-key pad + normalise per block, slice, re-pad cond for the sampler."""
    for k in p.config.obs_shapes:  # the old _check_obs: per-key finite check
        if not bool(torch.isfinite(obs_batch[k]).all()):
            raise ValueError(k)
    n, rows_ = next(iter(obs_batch.values())).shape[0], p.block_rows
    out = []
    for start in range(0, n, rows_):
        rows = slice(start, min(n, start + rows_))
        padded = {k: _pad_rows(v[rows], rows_) for k, v in obs_batch.items()}
        obs = {k: p._normalize(k, _obs_float32(k, padded[k]).to(p.device)) for k in p.config.obs_shapes}
        out.append(p.encoder(obs)[:rows.stop - start])
    cond = out[0] if len(out) == 1 else torch.cat(out)
    shape = (n, p.config.horizon, p.config.action_dim)
    if noise is None:
        noise = torch.randn(shape, generator=generator, device=p.device)
    chunks = []
    for start in range(0, n, rows_):
        rows = slice(start, min(n, start + rows_))
        x = p._sample(_pad_rows(cond[rows], rows_), _pad_rows(noise[rows], rows_).to(cond), generator)
        chunks.append(x[:rows.stop - start])
    return p._unnormalize(p.config.action_key, chunks[0] if len(chunks) == 1 else torch.cat(chunks))


dmap, teacher = load_diamond(sys.argv[1])
one = OneStepPolicy(teacher, dmap)
cfg = teacher.config
g = torch.Generator().manual_seed(0)
obs = {k: torch.randn(1, cfg.n_obs_steps, *s, generator=g) for k, s in cfg.obs_shapes.items()}
cases = {"one_new": lambda: one.predict_action_chunk(obs, generator=g), "one_old": lambda: old_chunk(one, obs, g),
         "flow10_new": lambda: teacher.predict_action_chunk(obs, generator=g),
         "flow10_old": lambda: old_chunk(teacher, obs, g)}
with torch.inference_mode():
    for p in (one, teacher):
        noise = torch.randn(1, cfg.horizon, cfg.action_dim, generator=g)
        a = p.predict_action_chunk(obs, generator=torch.Generator().manual_seed(3), noise=noise)
        b = old_chunk(p, obs, torch.Generator().manual_seed(3), noise)
        assert torch.equal(a, b), "the two pipelines differ"
    print("chunks equal bit for bit: yes")
    for f in cases.values():
        for _ in range(20):
            f()
    med = {k: [] for k in cases}
    for r in range(int(sys.argv[2])):
        for k, f in cases.items():
            xs = []
            for _ in range(25 if k.startswith("one") else 5):
                t0 = time.perf_counter()
                f()
                xs.append(time.perf_counter() - t0)
            med[k].append(statistics.median(xs))


def show(v):
    return f"{statistics.median(v):.3f} [{min(v):.3f}, {max(v):.3f}]"


for k, v in med.items():
    print(f"{k:12s} ms {show([1e3 * x for x in v])}")
for a, b in (("one_old", "one_new"), ("flow10_old", "flow10_new")):
    print(f"{a}/{b} per round: {show([x / y for x, y in zip(med[a], med[b])])}")
print("saved per chunk, ms, per round:", show([1e3 * (x - y) for x, y in zip(med["one_old"], med["one_new"])]))
for old, new in (("flow10_old", "one_old"), ("flow10_new", "one_new")):
    print(f"speed-up {old}/{new} per round: {show([x / y for x, y in zip(med[old], med[new])])}")
