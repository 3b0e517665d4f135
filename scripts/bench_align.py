"""Alignment quality vs cost on the exact Gaussian-mixture fixture (no simulator, CPU friendly).

For the tilted target p_r ∝ p·exp(r), r = -|x - c|²/(2 tau²), compares best-of-N, twisted SMC (GLASS
transitions; the exact posterior as an oracle) and guidance (exact ∇V) by the energy distance of their
samples to exact samples of p_r, against the network evaluations per returned sample (NFE). Also times
each method (median and spread over --repeats seeds). Prints device, torch version and git commit, then
one JSON line per configuration.

Usage:
    python -m ttfkit.scripts.bench_align [--dim 2] [--n 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=2)
    parser.add_argument("--n", type=int, default=1000, help="samples per method")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    from ttfkit.align import best_of_n, guided_sample, make_reward, smc
    from ttfkit.align.testing import GaussianMixtureFlow, energy_distance, energy_noise_floor

    torch.set_num_threads(args.threads)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# device cpu ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"git {commit}, threads {args.threads}, dim {args.dim}, n {args.n}, repeats {args.repeats}")
    g0 = torch.Generator().manual_seed(0)
    if args.dim == 2:
        mix = GaussianMixtureFlow(torch.tensor([0.3, 0.7]), torch.tensor([[-2.0, 0.0], [1.5, 1.0]]),
                                  torch.tensor([0.4, 0.6]))
        center, tau = torch.tensor([-1.0, 0.5]), 0.7
    else:
        means = torch.randn(3, args.dim, generator=torch.Generator().manual_seed(5))
        mix = GaussianMixtureFlow(torch.tensor([0.5, 0.3, 0.2]), means, torch.tensor([0.6, 0.6, 0.6]))
        center, tau = (means[1] + means[2]) / 2, 1.5
    reward = make_reward("quadratic", center=center, tau=tau)
    tilt = mix.tilt(center, tau)
    n, shape = args.n, (args.dim,)
    floor = energy_noise_floor(lambda k, g: tilt.sample(k, generator=g), n, n, repeats=10, generator=g0)
    print(json.dumps({"method": "floor (exact vs exact)", "ed_mean": floor[0], "ed_std": floor[1]}))
    print(json.dumps({"method": "base model", "ed_median": energy_distance(mix.sample(n, generator=g0),
                                                                         tilt.sample(n, generator=g0))}))
    configs = [("best-of-n", {"n_candidates": k, "steps": 20}) for k in (1, 4, 16, 64)]
    configs += [("smc-glass", {"value_samples": m, "inner_steps": 4, "n_steps": 10}) for m in (1, 4, 16)]
    configs += [("smc-exact-posterior", {"value_samples": m, "n_steps": 10}) for m in (1, 16)]
    configs += [("guidance-exact", {"steps": 20})]
    for name, kw in configs:
        eds, times, nfes = [], [], []
        for rep in range(args.repeats):
            g = torch.Generator().manual_seed(100 + rep)
            start = time.perf_counter()
            if name == "best-of-n":
                res = best_of_n(mix, reward, n_samples=n, shape=shape, generator=g, **kw)
            elif name.startswith("smc"):
                post = mix if name == "smc-exact-posterior" else "glass"
                res = smc(mix, reward, n_particles=n, shape=shape, posterior=post, generator=g, **kw)
            else:
                res = guided_sample(mix, lambda t, x, c: mix.value_grad(t, x, center, tau), n_samples=n, shape=shape,
                                    generator=g, **kw)
            times.append(time.perf_counter() - start)
            eds.append(energy_distance(res.samples, tilt.sample(n, generator=g)))
            nfes.append(res.nfe_per_sample)
        print(json.dumps({"method": name, **kw, "nfe_per_sample": statistics.median(nfes),
                          "ed_median": statistics.median(eds), "ed_min": min(eds), "ed_max": max(eds),
                          "time_s_median": statistics.median(times), "time_s_min": min(times),
                          "time_s_max": max(times)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
