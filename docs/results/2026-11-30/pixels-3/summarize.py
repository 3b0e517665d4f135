"""Tables and figure of pixels-3 from the per-episode eval JSONs and training metrics in this folder (and the
AdamW button-press run of ../pixels-2): success with Wilson 95% intervals, DoPr-AdamW minus AdamW with its
Newcombe 95% interval and the per-seed discordant pairs, training samples/s.

Run from the repository root: ``python docs/results/2026-11-30/pixels-3/summarize.py``; writes
``results.csv``, ``dopr_vs_adamw.csv`` and ``pixels3.png`` here and prints the tables. Runs whose files are
not here yet are skipped.
"""

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ttfkit.envs.evaluate import wilson_interval
from ttfkit.scripts.gap_report import newcombe_interval

HERE = Path(__file__).parent
P2 = HERE.parent / "pixels-2"
# (label, eval JSON, training metrics CSV or None)
RUNS = [
    ("fetch-pick-and-place expert (demo seeds 0-49)", HERE / "expert_pick-and-place.json", None),
    ("fetch-push expert (demo seeds 0-49)", HERE / "expert_push.json", None),
    ("fetch-pick-and-place state 1500 (check seeds 1000-1049)", HERE / "check_pick-and-place_state.json",
     HERE / "metrics_fetch-pick-and-place_state.csv"),
    ("fetch-push state 1500 (check seeds 1000-1049)", HERE / "check_push_state.json",
     HERE / "metrics_fetch-push_state.csv"),
    ("fetch-pick-and-place state 1500", HERE / "eval_fetch-pick-and-place_state.json",
     HERE / "metrics_fetch-pick-and-place_state.csv"),
    ("fetch-pick-and-place pixels 5000", HERE / "eval_fetch-pick-and-place_pixels_step005000.json",
     HERE / "metrics_fetch-pick-and-place_pixels.csv"),
    ("fetch-pick-and-place pixels 10000", HERE / "eval_fetch-pick-and-place_pixels_step010000.json",
     HERE / "metrics_fetch-pick-and-place_pixels.csv"),
    ("button-press-topdown pixels adamw 5000 (pixels-2)", P2 / "eval_button-press-topdown_pixels_step5000.json",
     P2 / "metrics_button-press-topdown_pixels.csv"),
    ("button-press-topdown pixels adamw 10000 (pixels-2)", P2 / "eval_button-press-topdown_pixels_step10000.json",
     P2 / "metrics_button-press-topdown_pixels.csv"),
    ("button-press-topdown pixels adamw 5000 (re-run)", HERE / "eval_button-press-topdown_adamw-rerun_step005000.json",
     HERE / "metrics_button-press-topdown_adamw-rerun.csv"),
    ("button-press-topdown pixels dopr-adamw 5000", HERE / "eval_button-press-topdown_dopr-adamw_step005000.json",
     HERE / "metrics_button-press-topdown_dopr-adamw.csv"),
    ("button-press-topdown pixels dopr-adamw 10000", HERE / "eval_button-press-topdown_dopr-adamw_step010000.json",
     HERE / "metrics_button-press-topdown_dopr-adamw.csv"),
]


def samples_per_s(metrics: Path, last: int = 2000) -> tuple[float, float]:
    """(median samples/s over the last ``last`` logged steps, mean samples/s over the whole run)."""
    with open(metrics) as f:
        rows = [r for r in csv.DictReader(f) if r["samples_per_s"]]
    steps = np.array([int(r["step"]) for r in rows])
    rate = np.array([float(r["samples_per_s"]) for r in rows])
    tail = rate[steps > steps.max() - last]
    return float(np.median(tail)), float(len(rate) / np.sum(1.0 / rate))  # harmonic mean = total-time rate


def main() -> None:
    table, evals = [], {}
    for label, path, metrics in RUNS:
        if not path.exists():
            continue
        d = json.loads(path.read_text())
        k, n = int(sum(d["successes"])), len(d["successes"])
        lo, hi = wilson_interval(k, n)
        rate_tail, rate_all = samples_per_s(metrics) if metrics and metrics.exists() else (float("nan"),) * 2
        evals[label] = d
        table.append({"run": label, "successes": k, "episodes": n, "success": k / n, "wilson_low": lo,
                      "wilson_high": hi, "mean_length": float(np.mean(d["lengths"])), "max_steps": d["max_steps"],
                      "train_samples_per_s_last2000": rate_tail, "train_samples_per_s_whole_run": rate_all})
    with open(HERE / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    for r in table:
        print(f"{r['run']:58s} {r['successes']:2d}/{r['episodes']} = {r['success']:4.0%}  "
              f"[{r['wilson_low']:.0%}, {r['wilson_high']:.0%}]  len {r['mean_length']:5.1f}  "
              f"samples/s {r['train_samples_per_s_last2000']:6.1f} (whole run {r['train_samples_per_s_whole_run']:6.1f})")

    diffs = []
    for step in (5000, 10000):
        a = evals.get(f"button-press-topdown pixels dopr-adamw {step}")
        b = evals.get(f"button-press-topdown pixels adamw {step} (pixels-2)")
        if a is None or b is None:
            continue
        if a["seeds"] != b["seeds"]:
            raise ValueError(f"step {step}: DoPr and AdamW were evaluated on different seeds")
        sa, sb = np.array(a["successes"], bool), np.array(b["successes"], bool)
        pa, pb = sa.mean(), sb.mean()
        lo, hi = newcombe_interval((pa, *wilson_interval(sa.sum(), sa.size)), (pb, *wilson_interval(sb.sum(), sb.size)))
        diffs.append({"step": step, "dopr_adamw": int(sa.sum()), "adamw": int(sb.sum()), "episodes": sa.size,
                      "difference": pa - pb, "newcombe_low": lo, "newcombe_high": hi,
                      "only_dopr_succeeds": int(np.sum(sa & ~sb)), "only_adamw_succeeds": int(np.sum(~sa & sb))})
        print(f"step {step}: DoPr-AdamW {sa.sum()}/50 vs AdamW {sb.sum()}/50: {pa - pb:+.0%} [{lo:+.0%}, {hi:+.0%}]; "
              f"seeds only DoPr solves {diffs[-1]['only_dopr_succeeds']}, only AdamW {diffs[-1]['only_adamw_succeeds']}")
    if diffs:
        with open(HERE / "dopr_vs_adamw.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(diffs[0]))
            w.writeheader()
            w.writerows(diffs)
    plot(table)


def plot(table: list[dict]) -> None:
    rows = [r for r in table if "check seeds" not in r["run"] and "expert" not in r["run"]]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [1.3, 1]})
    y = np.arange(len(rows))
    s = np.array([r["success"] for r in rows])
    err = np.array([[r["success"] - r["wilson_low"], r["wilson_high"] - r["success"]] for r in rows]).T
    ax.barh(y, s, xerr=err, color=["tab:blue" if "fetch" in r["run"] else "tab:orange" for r in rows], capsize=3)
    ax.set_yticks(y, [r["run"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("closed-loop success, 50 episodes (seeds 100000-100049), Wilson 95%")
    for name, path in [("Fetch pick-and-place pixels, AdamW", HERE / "metrics_fetch-pick-and-place_pixels.csv"),
                       ("button-press pixels, AdamW (pixels-2)", P2 / "metrics_button-press-topdown_pixels.csv"),
                       ("button-press pixels, DoPr-AdamW", HERE / "metrics_button-press-topdown_dopr-adamw.csv")]:
        if not path.exists():
            continue
        with open(path) as f:
            rows_m = list(csv.DictReader(f))
        step = np.array([int(r["step"]) for r in rows_m])
        loss = np.array([float(r["train_loss"]) for r in rows_m])
        k = 20  # moving average over 200 steps of logged losses
        ax2.plot(step[k - 1:], np.convolve(loss, np.ones(k) / k, mode="valid"), label=name)
    ax2.set_yscale("log")
    ax2.set_xlabel("step (batch 32)")
    ax2.set_ylabel("training loss (200-step moving average)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "pixels3.png", dpi=100)


if __name__ == "__main__":
    main()
