"""How much the held-out check itself varies: the final map of a `ttf distill` run scored on checks built with other
seeds (other held-out pairs, x_t draws, reference samples and GLASS baselines; seed 0 is the check the run used).

    python docs/results/2026-11-30/diamond-4/check_noise.py outputs/diamond4/stick1_ema18k --split-seed 1 --seeds 0 1 2 3 4
"""
import argparse
import json

import torch

from ttfkit.align.policy_diamond import load_diamond
from ttfkit.scripts import distill


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("map")
    parser.add_argument("--split-seed", type=int, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    torch.set_num_threads(1)
    dmap, teacher = load_diamond(args.map)
    meta = json.loads(open(f"{args.map}/config.json").read())["metadata"]
    for seed in args.seeds:
        ns = argparse.Namespace(checkpoint=f"{args.map}/teacher", dataset=meta["dataset"], device="cpu",
                                val_fraction=0.1, split_seed=args.split_seed, check_t=[0.0, 0.3, 0.6, 0.9],
                                check_pairs=8, check_samples=128, seed=seed, diag_fraction=0.25,
                                trajectory_fraction=0.75, trajectory_steps=8)
        policy, _, val_set, _ = distill._setup(ns)
        check = distill._check(policy, val_set, ns)
        got = check.diamond_distances(dmap, torch.Generator().manual_seed(seed))
        glass2 = check.baselines["glass2"]
        ratios = {t: got[t] / glass2[t] for t in check.ts}
        print(json.dumps({"check_seed": seed, "worst_ratio": max(ratios.values()),
                          "diamond": {f"{t:g}": round(v, 4) for t, v in got.items()},
                          "glass2": {f"{t:g}": round(v, 4) for t, v in glass2.items()},
                          "ratio": {f"{t:g}": round(v, 3) for t, v in ratios.items()}}), flush=True)


if __name__ == "__main__":
    main()
