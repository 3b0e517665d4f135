"""Micro-benchmarks behind the README's statements (run with --threads 1 semantics; median of 30 calls, ms).

    python docs/results/2026-11-30/dopr-cost/micro_gemm.py

Z^T Z into the (d+1)^2 buffer's [:-1, :-1] view vs a contiguous d x d matrix vs upper block panels
(n = 256 rows, d = 768: the default MLP's widest layer), and one cheap-AP apply (out 384, d 769, k 64):
out of place + copy (before) vs in place (after); the GEMM rate of G U.
"""

import statistics
import time

import torch


def ms(fn, reps=30):
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main():
    torch.set_num_threads(1)
    n, d = 256, 768
    z = torch.randn(n, d)
    augmented, gram = torch.zeros(d + 1, d + 1), torch.zeros(d, d)
    print(f"Z^T Z into the augmented view  {ms(lambda: augmented[:-1, :-1].addmm_(z.T, z)):.2f}")
    print(f"Z^T Z into a contiguous matrix {ms(lambda: gram.addmm_(z.T, z)):.2f}")

    def panels(blocks=4):
        edges = [round(i * d / blocks / 16) * 16 for i in range(blocks)] + [d]
        for a, b in zip(edges[:-1], edges[1:]):
            gram[a:b, a:].addmm_(z[:, a:b].T, z[:, a:])

    print(f"Z^T Z upper block panels (4)   {ms(panels):.2f}")
    out, k = 384, 64
    g, gb, basis, coef = torch.randn(out, d), torch.randn(out), torch.randn(d + 1, k), torch.randn(k)
    basis_w, basis_b = basis[:-1], basis[-1]

    def before():
        projected = torch.addr(g @ basis_w, gb, basis_b) * coef
        mw, mb = torch.addmm(g, projected, basis_w.T, beta=0.5), torch.addmv(gb, projected, basis_b, beta=0.5)
        g.copy_(mw)
        gb.copy_(mb)

    def after():
        projected = (g @ basis_w).addr_(gb, basis_b).mul_(coef)
        g.addmm_(projected, basis_w.T, beta=0.5)
        gb.copy_(torch.addmv(gb, projected, basis_b, beta=0.5))

    print(f"cheap-AP apply, before         {ms(before):.3f}")
    print(f"cheap-AP apply, in place       {ms(after):.3f}")
    t = ms(lambda: g @ basis_w)
    print(f"G U: {t:.3f} ms = {2 * out * d * k / t / 1e6:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
