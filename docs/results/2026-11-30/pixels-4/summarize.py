"""Table (results.csv) and figure (pixels4.png) of run.sh's JSONs: success with Wilson 95% intervals and wall
time per episode of the base pixel policy and its aligned versions. Run from the repository root:

    python docs/results/2026-11-30/pixels-4/summarize.py
"""

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ttfkit.envs.evaluate import wilson_interval  # noqa: E402

HERE = Path(__file__).parent


def _load(name):
    data = json.loads((HERE / f"{name}.json").read_text())
    return (data["eval"], data["align"]) if "eval" in data else (data, None)


def _rows():
    rows = []
    ev, _ = _load("eval-50")
    _, base = _load("none")  # the base through the aligner (--method none), seeds 100000-100009: its wall time
    rows.append(("base (ttf eval)", ev, base))
    ev, al = _load("bo4-critic-50")
    rows.append(("best-of-4, critic", ev, al))
    if (HERE / "bo4-rollout-h120-b.json").exists():
        a, al_a = _load("bo4-rollout-h120")
        b, al_b = _load("bo4-rollout-h120-b")
        merged = {k: a[k] + b[k] for k in ("seeds", "successes", "lengths")}
        n_a, n_b = len(a["seeds"]), len(b["seeds"])
        al = {k: (al_a[k] * al_a["chunks"] + al_b[k] * al_b["chunks"]) / (al_a["chunks"] + al_b["chunks"])
              for k in ("nfe_per_chunk", "sim_steps_per_chunk", "wall_s_per_chunk")}
        al["wall_s_per_episode"] = (al_a["wall_s"] + al_b["wall_s"]) / (n_a + n_b)
        rows.append(("best-of-4, rollout (simulator)", merged, al))
    return rows


def main() -> None:
    table = []
    for name, ev, al in _rows():
        s, n = sum(ev["successes"]), len(ev["successes"])
        lo, hi = wilson_interval(s, n)
        table.append({"policy": name, "episodes": n, "first_seed": ev["seeds"][0], "successes": s,
                      "success": round(s / n, 3), "wilson_low": round(lo, 3), "wilson_high": round(hi, 3),
                      "nfe_per_chunk": al["nfe_per_chunk"], "sim_steps_per_chunk": round(al["sim_steps_per_chunk"], 1),
                      "wall_s_per_chunk": round(al["wall_s_per_chunk"], 4),
                      "wall_s_per_episode": round(al["wall_s_per_episode"], 2)})
    with open(HERE / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.5))
    x = range(len(table))
    ax.bar(x, [r["success"] for r in table], color=["tab:gray", "tab:blue", "tab:orange"][:len(table)],
           yerr=[[r["success"] - r["wilson_low"] for r in table], [r["wilson_high"] - r["success"] for r in table]],
           capsize=4)
    ax.set_xticks(list(x), [f"{r['policy']}\n({r['episodes']} ep.)" for r in table], fontsize=7)
    ax.set(ylim=(0, 1), ylabel="success (Wilson 95%)", title="button-press-topdown, 84x84 pixels + agent_pos")
    bx.bar(list(x), [r["wall_s_per_chunk"] for r in table], color=["tab:gray", "tab:blue", "tab:orange"][:len(table)])
    bx.set_xticks(list(x), [r["policy"] for r in table], fontsize=7)
    bx.set(ylabel="wall s per chunk", yscale="log", title="cost (shared 2-core CPU, load 3-5)")
    fig.tight_layout()
    fig.savefig(HERE / "pixels4.png", dpi=110)
    for r in table:
        print(r)


if __name__ == "__main__":
    main()
