"""Plots of this folder's results: expert success per task (Wilson 95% intervals) and the
throughput bench. Run from the repository root: python docs/results/2026-11-30/robomimic/plot.py"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent


def main() -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    names = [("lift", "expert_lift.json"), ("can", "expert_can.json"), ("square", "expert_square.json"),
             ("square\nseeds 200000+", "expert_square_seed200000.json"), ("square v1", "expert_square_v1.json"),
             ("flow MLP\nlift, 50 demos", "policy_lift_flow_mlp.json")]
    labels, rates, lows, highs = [], [], [], []
    for label, file in names:
        if not (HERE / file).exists():
            continue
        d = json.loads((HERE / file).read_text())
        labels.append(label)
        rates.append(d["success_rate"])
        lows.append(d["success_rate"] - d["ci_low"])
        highs.append(d["ci_high"] - d["success_rate"])
    ax1.bar(range(len(rates)), rates, yerr=[lows, highs], capsize=4, color="tab:blue")
    ax1.set_xticks(range(len(rates)), labels, fontsize=8)
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("success (50 episodes, Wilson 95%)")
    ax1.set_title("robomimic tasks: closed-loop success")
    rows = [json.loads(line) for line in (HERE / "bench.jsonl").read_text().splitlines() if line.strip()]
    state = [r for r in rows if r["bench"] == "state"]
    ev = [r for r in rows if r["bench"] == "evaluate"]
    x = [f"{r['task']}" for r in state] + [f"eval\n{r['workers']} workers" for r in ev]
    y = [r["steps_per_s"]["median"] for r in state] + [r["steps_per_s_after_startup"]["median"] for r in ev]
    ax2.bar(range(len(y)), y, color=["tab:green"] * len(state) + ["tab:orange"] * len(ev))
    ax2.set_xticks(range(len(y)), x, fontsize=7)
    ax2.set_ylabel("env steps/s (median)")
    ax2.set_title("throughput (shared 2-core machine)")
    fig.tight_layout()
    fig.savefig(HERE / "robomimic.png", dpi=120)


if __name__ == "__main__":
    main()
