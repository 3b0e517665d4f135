"""Issue 12, the second pixel setting (button-press, chosen by screen.sh's rule): per-seed and pooled table of every
cell seeds.sh ran, with Wilson intervals and Newcombe intervals of the gain over the base on the same episodes.
Writes table.md, table.csv and table.png (pooled success with Wilson intervals) in the task's folder.   python docs/results/2026-12-01/align-8/table.py [TASK]"""
import csv
import json
import sys
from pathlib import Path

from ttfkit.envs.evaluate import wilson_interval
from ttfkit.scripts.gap_report import newcombe_interval

CELLS = [("base", "base", 10), ("bo8_critic", "critic, best-of-8", 80), ("smc8_critic", "critic, SMC 8x", 72),
         ("guidance8_critic", "critic, guidance 8x", 64),
         ("bo8_critic_refit", "**critic refit once, best-of-8 (primary)**", 80),
         ("bo4_rollout", "rollout (simulator, not deployable), best-of-4", 40)]
SEEDS = (0, 1, 2)


def _load(folder: Path, cell: str, seed: int) -> dict | None:
    path = folder / f"{cell}_seed{seed}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return {"eval": data.get("eval", data), "align": data.get("align", {})}


def main(task: str = "button-press") -> None:
    folder = Path(__file__).parent / task
    base = {s: _load(folder, "base", s) for s in SEEDS}
    rows, bars = [], []
    for cell, label, nfe in CELLS:
        per_seed = {s: _load(folder, cell, s) for s in SEEDS}
        done = [s for s in SEEDS if per_seed[s] is not None and base[s] is not None]
        if not done:
            continue
        succ = {s: sum(per_seed[s]["eval"]["successes"]) for s in done}
        n = 50 * len(done)
        k, base_k = sum(succ.values()), sum(sum(base[s]["eval"]["successes"]) for s in done)
        lo, hi = wilson_interval(k, n)
        blo, bhi = wilson_interval(base_k, n)
        dlo, dhi = newcombe_interval((k / n, lo, hi), (base_k / n, blo, bhi))
        walls = [per_seed[s]["align"]["wall_s_per_episode"] for s in done if "wall_s_per_episode" in per_seed[s]["align"]]
        bars.append((label.strip("*").replace(" (primary)", ""), k / n, lo, hi))
        rows.append({"cell": label, "nfe_per_chunk": nfe,
                     "per_seed": " / ".join(str(succ.get(s, "-")) for s in SEEDS),
                     "success": f"{k}/{n} = {100 * k / n:.0f}%", "wilson95": f"[{100 * lo:.0f}, {100 * hi:.0f}]",
                     "gain_points": "" if cell == "base" else
                     f"{100 * (k - base_k) / n:+.0f} [{100 * dlo:+.0f}, {100 * dhi:+.0f}]",
                     "intervals_apart": "" if cell == "base" else ("yes" if lo > bhi or hi < blo else "no"),
                     "wall_s_per_episode": f"{sum(walls) / len(walls):.1f}" if walls else ""})
    with (folder / "table.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    head = ("| cell | NFE / chunk | seeds 0 / 1 / 2 | pooled | Wilson 95% | gain vs base, same episodes [Newcombe 95%] "
            "| intervals apart | wall s / episode |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['cell']} | {r['nfe_per_chunk']} | {r['per_seed']} | {r['success']} | {r['wilson95']} | "
              f"{r['gain_points']} | {r['intervals_apart']} | {r['wall_s_per_episode']} |" for r in rows]
    (folder / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot(bars, folder / "table.png", f"{task}, pixels: 3 training seeds x 50 evaluation episodes")


def _plot(bars, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    y = range(len(bars))
    ax.barh(list(y), [100 * p for _, p, _, _ in bars], color=["0.6"] + ["C0"] * (len(bars) - 1))
    ax.errorbar([100 * p for _, p, _, _ in bars], list(y), fmt="none", ecolor="k", capsize=3,
                xerr=[[100 * (p - lo) for _, p, lo, _ in bars], [100 * (hi - p) for _, p, _, hi in bars]])
    ax.axvline(100 * bars[0][1], color="0.4", ls="--", lw=1)
    ax.set_yticks(list(y), [b[0] for b in bars])
    ax.invert_yaxis()
    ax.set_xlabel("closed-loop success, % (pooled, Wilson 95%)")
    ax.set_xlim(0, 100)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main(*sys.argv[1:])
