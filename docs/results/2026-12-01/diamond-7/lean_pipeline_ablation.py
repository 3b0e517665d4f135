"""Issue 13: where the shipped observation pipeline's extra cost over lean_pipeline_bound.py's lean path goes, in situ
(one-step chunks, batch 1, one thread): the lean path with one shipped piece added back at a time. ROUNDS rounds of
alternating blocks of 100 chunks; printed: median ms per chunk, then the median per-round difference to the lean path.

Usage: python lean_pipeline_ablation.py MAP ROUNDS
"""
import torch, time, statistics, sys
from torch.nn import functional as F
from ttfkit.align.one_step import OneStepPolicy
from ttfkit.align.policy_diamond import load_diamond
from ttfkit.policies.base import _pad_rows
torch.set_num_threads(1)
dmap, t10 = load_diamond(sys.argv[1]); one = OneStepPolicy(t10, dmap)
cfg = t10.config; g = torch.Generator().manual_seed(0)
obs = {k: torch.randn(1, cfg.n_obs_steps, *s, generator=g) for k, s in cfg.obs_shapes.items()}
enc = t10.encoder; keys = enc.lowdim_keys; To = cfg.n_obs_steps; nz = t10.normalizer
scale = torch.cat([nz._entry(k).scale for k in keys]).repeat(To); offset = torch.cat([nz._entry(k).offset for k in keys]).repeat(To)
L1 = enc.lowdim[0]; W1 = (L1.weight * scale).contiguous(); b1 = L1.bias + L1.weight @ offset
def tail(c):
    n = torch.randn((1, 16, 4), generator=g).expand(8, 16, 4).contiguous()
    x0 = torch.randn((8, 16, 4), generator=g)
    return one._unnormalize("action", one._one_call(c, n, x0)[:1])
def lean():
    state = torch.cat([obs[k] for k in keys], -1).flatten(1)
    if not bool(torch.isfinite(state).all()): raise ValueError
    return tail(enc.lowdim[2](F.mish(F.linear(state.expand(8, -1), W1, b1))))
def lean_check():
    one._check_obs(obs)
    state = torch.cat([obs[k] for k in keys], -1).flatten(1)
    return tail(enc.lowdim[2](F.mish(F.linear(state.expand(8, -1), W1, b1))))
def lean_norm():  # per-key normalisation, no fold
    state = torch.cat([one._normalize(k, obs[k]) for k in keys], -1).flatten(1)
    if not bool(torch.isfinite(state).all()): raise ValueError
    return tail(enc.lowdim(state.expand(8, -1).contiguous()))
def lean_pad():  # per-key padding, finite checks and normalisation, the encoder module
    o8 = {k: _pad_rows(obs[k], 8) for k in keys}
    if not all(bool(torch.isfinite(v).all()) for v in o8.values()): raise ValueError
    return tail(enc({k: one._normalize(k, v) for k, v in o8.items()}))
def blocks_path():  # the shipped encode_obs_blocks (checks, blocks, conversions), its cond re-padded
    return tail(_pad_rows(one.encode_obs_blocks(obs), 8))
def shipped():
    return one.predict_action_chunk(obs, generator=g)
cases = {"lean": lean, "lean+check": lean_check, "lean+norm": lean_norm, "perkey": lean_pad, "encode_obs_blocks": blocks_path, "shipped": shipped}
with torch.inference_mode():
    for f in cases.values():
        for _ in range(20): f()
    ts = {k: [] for k in cases}
    for r in range(int(sys.argv[2])):
        for k, f in cases.items():
            xs = []
            for _ in range(100):
                t0 = time.perf_counter(); f(); xs.append(time.perf_counter() - t0)
            ts[k].append(statistics.median(xs))
    print({k: round(1e3 * statistics.median(v), 3) for k, v in ts.items()})
    print({k: round(1e3 * statistics.median([a - b for a, b in zip(v, ts["lean"])]), 3) for k, v in ts.items()})
