"""Plot this folder's results: closed-loop success (pixel vs state policy, Wilson 95% CI) and training
samples/s per image encoder. Usage: python docs/results/2026-11-30/pixels/plot.py"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ttfkit.envs.evaluate import EvalResult  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    evals = sorted(HERE.glob("eval_*.json"))
    names, rates, lo, hi = [], [], [], []
    for path in evals:
        r = EvalResult.from_json(path.read_text())
        names.append(path.stem.removeprefix("eval_").replace("button-press-topdown", "bpt"))
        rates.append(r.success_rate)
        lo.append(r.success_rate - r.ci_low)
        hi.append(r.ci_high - r.success_rate)
    ax1.bar(names, rates, yerr=[lo, hi], capsize=4, color=["tab:orange" if "pixels" in n else "tab:blue"
                                                          for n in names])
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("success (50 episodes, Wilson 95% CI)")
    ax1.set_title("closed loop, same 50 demos")
    rows = [json.loads(line) for line in (HERE / "bench_encoders.jsonl").read_text().splitlines()
            if line.startswith("{")]
    ax2.bar([r["encoder"] for r in rows], [r["train_samples_per_cpu_s"] for r in rows], color="tab:green")
    ax2.set_ylabel("training samples per CPU-second (batch 32)")
    ax2.set_title("pixel policy cost per encoder (84x84, To=2)")
    for i, r in enumerate(rows):
        ax2.text(i, r["train_samples_per_cpu_s"], f"{r['chunk_latency_cpu_ms_median']:.0f} CPU-ms/chunk", ha="center",
                 va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "pixels.png", dpi=120)


if __name__ == "__main__":
    main()
