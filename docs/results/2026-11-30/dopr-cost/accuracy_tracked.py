"""Cheap AP as DoPr runs it, against exact AP: the before (warm subspace iteration on the full Sigma)
and after (Nystrom from a sketch against the last basis) forms, tracked over a training run.

One default MLP flow policy trains with exact-AP DoPr-AdamW (default schedule: statistics every 10
steps, inverse every 50) on fresh random batches (bench_optim's shapes, batch 256). Three preconditioners
hook the same model and see the same rows: exact AP (rank None), cheap AP from ``--before`` REV and
cheap AP from the working tree (rank 64). Every step each one preconditions a copy of the same gradient;
the cosine of each cheap AP gradient with the exact one is recorded per layer (layers with d > 128),
and summarised per refresh window as the median over the window's steps.

    python docs/results/2026-11-30/dopr-cost/accuracy_tracked.py --before fdf919c --steps 500 --out accuracy_tracked.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import load_revision  # noqa: E402

import ttfkit.optim.dopr as dopr_now  # noqa: E402
from ttfkit.optim import make_optimizer  # noqa: E402
from ttfkit.scripts.bench_optim import _batch, _policy_and_batch  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device("cpu")
    policy, _ = _policy_and_batch("mlp", 256, device)
    kw = dict(stat_every=10, inverse_every=50)
    aps = {"exact": dopr_now.ActivationPreconditioner(policy, rank=None, **kw),
           "before": load_revision(args.before).ActivationPreconditioner(policy, rank=args.rank, **kw),
           "after": dopr_now.ActivationPreconditioner(policy, rank=args.rank, **kw)}
    opt = make_optimizer("adamw", policy, lr=args.lr)
    params = [p for p in policy.parameters() if p.requires_grad]
    index = {id(p): i for i, p in enumerate(params)}
    names = [n for n, layer in aps["exact"].layers.items() if layer.d_in + 1 > 128]
    cos = {(form, n): [] for form in ("before", "after", "raw") for n in names}
    rows = []
    for step in range(args.steps):
        torch.manual_seed(step)
        opt.zero_grad(set_to_none=True)
        policy.compute_loss(_batch(256, device, seed=step))[0].backward()
        raw = [p.grad.clone() for p in params]
        out = {}
        for form, ap in aps.items():
            for p, g in zip(params, raw):
                p.grad.copy_(g)
            ap.precondition_()
            out[form] = {n: torch.cat([layer.weight.grad.reshape(layer.weight.shape[0], -1),
                                       layer.bias.grad[:, None]], 1).clone()
                         for n, layer in ap.layers.items() if n in names}
        for n in names:
            exact = out["exact"][n].flatten()
            layer = aps["exact"].layers[n]
            g = torch.cat([raw[index[id(layer.weight)]].reshape(layer.weight.shape[0], -1),
                           raw[index[id(layer.bias)]][:, None]], 1).flatten()
            for form, m in (("before", out["before"][n].flatten()), ("after", out["after"][n].flatten()), ("raw", g)):
                cos[(form, n)].append(torch.nn.functional.cosine_similarity(m, exact, 0).item())
        # train on exact AP's gradient (the last preconditioner wrote the cheap one): redo exact AP's product
        for p, g in zip(params, raw):
            p.grad.copy_(g)
        for layer in aps["exact"].layers.values():
            if layer.inverse is not None:
                dopr_now._apply(layer)
        opt.step()
        if (step + 1) % 50 == 0:
            window = step // 50
            for n in names:
                row = {"window": window, "steps": f"{step - 49}-{step}", "layer": n, "d": aps["exact"].layers[n].d_in + 1}
                for form in ("raw", "before", "after"):
                    row[f"cos_{form}"] = statistics.median(cos[(form, n)][-50:])
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.out:
                    with args.out.open("a") as f:
                        f.write(json.dumps(row) + "\n")
    print("\nmedian cosine to exact AP per 50-step window (raw / before / after), layers with d > 128")
    for window in sorted({r["window"] for r in rows}):
        sel = [r for r in rows if r["window"] == window]
        print(f"steps {sel[0]['steps']:>9s}: " + "  ".join(
            f"{r['layer'].split('.', 1)[-1]}={r['cos_raw']:.2f}/{r['cos_before']:.2f}/{r['cos_after']:.2f}" for r in sel))
    return 0


if __name__ == "__main__":
    sys.exit(main())
