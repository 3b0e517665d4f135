"""FLOP model of DoPr's per-step parts (README table): per covered layer of the default flow policy at
batch 256, forward+backward 6 n d_in out, G P (cheap: 4 out d k; exact: 2 out d^2), and the statistics
per recorded step: full Z^T Z (2 n d_in^2), in upper block panels ((b+1)/(2b) of it), and after this
change (sketch 4 n d k on cheap layers, block panels on the rest). d = d_in + 1 with a bias, k = 64.

    python docs/results/2026-11-30/dopr-cost/flop_model.py
"""

import torch

from ttfkit.optim import DoPr
from ttfkit.optim.dopr import _GRAM_BLOCK, _GRAM_MAX_BLOCKS, DEFAULT_RANK
from ttfkit.scripts.bench_optim import _policy_and_batch


def main(stat_every: int = 10):
    torch.set_num_threads(1)
    k = DEFAULT_RANK
    for net in ("mlp", "unet"):
        policy, batch = _policy_and_batch(net, 256, torch.device("cpu"))
        opt = DoPr(policy, stat_every=1, inverse_every=10**9)
        policy.compute_loss(batch)[0].backward()
        total = dict.fromkeys(("train", "apply", "gram", "gram_blocked", "after"), 0.0)
        for layer in opt.preconditioner.layers.values():
            n, out, d_in = layer.count.item(), layer.weight.shape[0], layer.d_in
            d = d_in + (layer.bias is not None)
            blocks = min(_GRAM_MAX_BLOCKS, max(1, d_in // _GRAM_BLOCK))
            blocked = 2 * n * d_in * d_in * (blocks + 1) / (2 * blocks)
            cheap = d > 2 * k
            total["train"] += 6 * n * d_in * out
            total["apply"] += 4 * out * d * k if cheap else 2 * out * d * d
            total["gram"] += 2 * n * d_in * d_in
            total["gram_blocked"] += blocked
            total["after"] += 4 * n * d * k if cheap else blocked
        train = total["train"]
        print(f"{net}: forward+backward {train / 1e9:.2f} GFLOP, G P {total['apply'] / 1e9:.2f} ({total['apply'] / train:.3f}x); "
              + ", ".join(f"statistics {key} {total[key] / stat_every / 1e9:.3f} ({total[key] / stat_every / train:.3f}x)"
                          for key in ("gram", "gram_blocked", "after")) + f" per step at stat_every={stat_every}")


if __name__ == "__main__":
    main()
