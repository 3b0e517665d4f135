"""Issue 13: how far a leaner observation pipeline would move the one-step speed-up (a bound, not library code).

Lean chunk path for state observations: the normalisers folded into the encoder's first layer, one finite check on
the stacked state, one padded copy, unnormalisation as one addcmul. It is given to the 10-step policy (as shipped
and with its time inputs folded, `bench_diamond`'s reference) and to the folded one-step call, and timed against the
shipped paths in ROUNDS rounds of alternating blocks (25 calls of 10-step chunks, 100 of one-call chunks), batch 1,
one thread. The lean encoder output is checked against the shipped one. Ratios per round: median (min, max).

Usage: python lean_pipeline_bound.py MAP ROUNDS   (MAP: a `ttf distill` directory of the default MLP flow policy)
"""
import torch, time, statistics, sys
from torch.nn import functional as F
from ttfkit.align.one_step import OneStepPolicy
from ttfkit.align.policy_diamond import load_diamond
from ttfkit.scripts.bench_diamond import _time_folded, _teacher_with_steps
torch.set_num_threads(1)
M = sys.argv[1]
dmap, t10 = load_diamond(M); one = OneStepPolicy(t10, dmap); tf = _time_folded(_teacher_with_steps(M, 10))
cfg = t10.config; g = torch.Generator().manual_seed(0)
obs = {k: torch.randn(1, cfg.n_obs_steps, *s, generator=g) for k, s in cfg.obs_shapes.items()}
enc = t10.encoder; keys = enc.lowdim_keys; To = cfg.n_obs_steps
nz = t10.normalizer
scale = torch.cat([nz._entry(k).scale for k in keys]); offset = torch.cat([nz._entry(k).offset for k in keys])
S, O = scale.repeat(To), offset.repeat(To)  # (To*D,) in the encoder's flattened order (b, t, d)
L1 = enc.lowdim[0]
W1 = (L1.weight * S).contiguous(); b1 = L1.bias + L1.weight @ O
ea = nz._entry(cfg.action_key); inv = 1 / ea.scale; sh = -ea.offset / ea.scale
def lean_cond(obs):
    state = torch.cat([obs[k] for k in keys], -1).flatten(1)  # (1, To*D)
    if not bool(torch.isfinite(state).all()): raise ValueError("non-finite")
    state = state.expand(8, -1)
    h = F.mish(F.linear(state, W1, b1))
    return enc.lowdim[2](h)
def lean_flow(p):
    def run():
        c = lean_cond(obs)
        n = torch.randn((1, 16, 4), generator=g).expand(8, 16, 4).contiguous()
        x = p.sample(c, n)[:1]
        return torch.addcmul(sh, x, inv)
    return run
def lean_one():
    c = lean_cond(obs)
    n = torch.randn((1, 16, 4), generator=g).expand(8, 16, 4).contiguous()
    x0 = torch.randn((8, 16, 4), generator=g)
    x = one._one_call(c, n, x0)[:1]
    return torch.addcmul(sh, x, inv)
cases = {"flow10": lambda: t10.predict_action_chunk(obs, generator=g), "tf10": lambda: tf.predict_action_chunk(obs, generator=g),
         "one": lambda: one.predict_action_chunk(obs, generator=g),
         "lean_flow10": lean_flow(t10), "lean_tf10": lean_flow(tf), "lean_one": lean_one}
with torch.inference_mode():
    n = torch.randn(1, 16, 4)
    # check the lean cond equals the shipped one
    print("cond diff", (lean_cond(obs)[:1] - t10.encode_obs(obs)).abs().max().item())
    for f in cases.values():
        for _ in range(10): f()
    ts = {k: [] for k in cases}
    for r in range(int(sys.argv[2])):
        for k, f in cases.items():
            xs = []
            for _ in range(25 if "10" in k else 100):
                t0 = time.perf_counter(); f(); xs.append(time.perf_counter() - t0)
            ts[k].append(statistics.median(xs))
    print({k: round(1e3 * statistics.median(v), 3) for k, v in ts.items()})
    def rr(a, b):
        v = [x / y for x, y in zip(ts[a], ts[b])]
        return round(statistics.median(v), 2), round(min(v), 2), round(max(v), 2)
    print("shipped one vs flow10", rr("flow10", "one"), "vs tf10", rr("tf10", "one"))
    print("lean one vs lean flow10", rr("lean_flow10", "lean_one"), "vs lean tf10", rr("lean_tf10", "lean_one"))
