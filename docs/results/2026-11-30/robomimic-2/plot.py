"""Closed-loop success of this folder's results (Wilson 95% intervals): scripted experts on fresh seeds
200000-200049 and flow-MLP policies from 50 scripted demos on seeds 100000-100049 (Lift from the
earlier robomimic/ folder). Run from the repository root: python docs/results/2026-11-30/robomimic-2/plot.py"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
BARS = [("expert\nlift", HERE / "expert_lift_fresh.json"), ("expert\ncan", HERE / "expert_can_fresh.json"),
        ("expert\nsquare", HERE / "expert_square_fresh.json"),
        ("flow MLP\nlift", HERE.parent / "robomimic" / "policy_lift_flow_mlp.json"),
        ("flow MLP\ncan", HERE / "policy_can_flow_mlp.json"), ("flow MLP\nsquare", HERE / "policy_square_flow_mlp.json")]


def main() -> None:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, (label, path) in enumerate(BARS):
        d = json.loads(path.read_text())
        rate = d["success_rate"]
        ax.bar(i, rate, yerr=[[rate - d["ci_low"]], [d["ci_high"] - rate]], capsize=4,
               color="tab:gray" if label.startswith("expert") else "tab:blue")
        ax.text(i, 0.02, f"{sum(d['successes'])}/{d['n_episodes']}", ha="center", fontsize=8, color="white")
    ax.set_xticks(range(len(BARS)), [b[0] for b in BARS], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success (50 episodes, Wilson 95%)")
    ax.set_title("robomimic tasks: experts (seeds 200000+) and policies from 50 demos (seeds 100000+)", fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "robomimic2.png", dpi=120)


if __name__ == "__main__":
    main()
