"""Issue 13: one-step vs 10-step chunk latency when both chunk paths are compiled with torch.compile (inductor, CPU).

The pure tensor part of a chunk (normalise, encode, sample, unnormalise) is compiled with fullgraph=True for each
policy; the observation checks, the noise draws and the batch-1 padding run eagerly around it, as in
``predict_action_chunk``. The one-step policy's folded weights are computed once before compiling. Each compiled
chunk is checked against the eager chunk for the same inputs. Then ROUNDS rounds of alternating blocks of 25 calls
(eager 10-step, eager one-step, compiled 10-step, compiled one-step), batch 1, one thread; the ratio is taken per
round and summarised by its median and range.

Usage: python compiled_latency.py MAP [ROUNDS]     (MAP: a `ttf distill` directory of the default MLP flow policy)
"""

import json
import statistics
import sys
import time

import torch

from ttfkit.align.one_step import OneStepPolicy
from ttfkit.align.policy_diamond import load_diamond
from ttfkit.policies.base import _pad_rows

torch.set_num_threads(1)
dmap, flow = load_diamond(sys.argv[1])
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
one = OneStepPolicy(flow, dmap)
cfg, g = flow.config, torch.Generator().manual_seed(0)
obs = {k: torch.randn(1, cfg.n_obs_steps, *s, generator=g) for k, s in cfg.obs_shapes.items()}
shape, rows = (cfg.horizon, cfg.action_dim), flow.block_rows
weight_in, bias_in, weight_out, bias_out, e_scale = one._folded()
mlp = one.dmap.net.backbone


def flow_core(obs8, noise8):
    return flow._unnormalize(cfg.action_key, flow.sample(flow._encode_checked(obs8), noise8))


def one_step_core(obs8, noise8, x0):  # OneStepPolicy._one_call with its folded weights as constants
    cond, n = one._encode_checked(obs8), noise8.shape[0]
    h = torch.addmm(bias_in, torch.cat([cond, x0.reshape(n, -1), noise8.reshape(n, -1)], 1), weight_in)
    for block in mlp.blocks:
        h = h + block(h)
    x = torch.addmm(bias_out, mlp.out_norm(h), weight_out).view_as(noise8) + e_scale * noise8
    return one._unnormalize(cfg.action_key, x)


def chunk(core, draws_x0):
    def run():
        flow._check_obs(obs)
        noise = _pad_rows(torch.randn((1, *shape), generator=g), rows)
        args = (noise, torch.randn((rows, *shape), generator=g)) if draws_x0 else (noise,)
        return core({k: _pad_rows(v, rows) for k, v in obs.items()}, *args)[:1]
    return run


compiled = {"flow": torch.compile(flow_core, fullgraph=True), "one": torch.compile(one_step_core, fullgraph=True)}
cases = {"flow-10 eager": lambda: flow.predict_action_chunk(obs, generator=g),
         "one-step eager": lambda: one.predict_action_chunk(obs, generator=g),
         "flow-10 compiled": chunk(compiled["flow"], False), "one-step compiled": chunk(compiled["one"], True)}
with torch.inference_mode():
    obs8 = {k: _pad_rows(v, rows) for k, v in obs.items()}
    noise8, x0 = torch.randn(rows, *shape, generator=g), torch.randn(rows, *shape, generator=g)
    for name, core, args in (("flow", flow_core, (noise8,)), ("one", one_step_core, (noise8, x0))):
        t0 = time.perf_counter()
        err = (compiled[name](obs8, *args) - core(obs8, *args)).abs().max().item()
        print(json.dumps({"check": name, "max_abs_diff_compiled_vs_eager": err,
                          "first_call_s": time.perf_counter() - t0}), flush=True)
        assert err < 1e-4, err
    for run in cases.values():
        for _ in range(10):
            run()
    times = {k: [] for k in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            block = []
            for _ in range(25):
                t0 = time.perf_counter()
                run()
                block.append(time.perf_counter() - t0)
            times[name].append(statistics.median(block))
ratio = {mode: [f / o for f, o in zip(times[f"flow-10 {mode}"], times[f"one-step {mode}"])]
         for mode in ("eager", "compiled")}
for name, v in times.items():
    print(json.dumps({"case": name, "median_ms": 1e3 * statistics.median(v), "min_ms": 1e3 * min(v),
                      "max_ms": 1e3 * max(v)}))
for mode, r in ratio.items():
    print(json.dumps({"speedup": mode, "median": statistics.median(r), "min": min(r), "max": max(r),
                      "rounds": rounds}))
