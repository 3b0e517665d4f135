"""Issue 12, pixel button-press setting: per-seed and pooled table of every cell in this folder (and seed 0's base and
best-of-4 from ../pixels-4). Writes table.md and table.csv here.   python docs/results/2026-11-30/align-7/table.py"""
import csv
import json
from pathlib import Path

from ttfkit.envs.evaluate import wilson_interval

HERE = Path(__file__).parent
P4 = HERE.parent / "pixels-4"
CELLS = [("base", "base", 10), ("bo4_critic", "critic, best-of-4", 40), ("bo8_critic", "critic, best-of-8", 80),
         ("bo16_critic", "critic, best-of-16", 160), ("smc8_critic", "critic, SMC 8x", 72),
         ("bo8_critic_refit", "critic refit once, best-of-8", 80), ("bo4_rollout", "rollout (simulator), best-of-4", 40)]
SEEDS = (0, 1, 2)


def _load(cell: str, seed: int) -> dict | None:
    path = HERE / f"{cell}_seed{seed}.json"
    if seed == 0 and cell == "bo4_rollout":  # ../pixels-4 ran it as 10 + 40 episodes
        parts = [json.loads((P4 / f"bo4-rollout-h120{tag}.json").read_text()) for tag in ("", "-b")]
        walls = [p["align"]["wall_s_per_episode"] * p["eval"]["n_episodes"] for p in parts]
        return {"eval": {"successes": [x for p in parts for x in p["eval"]["successes"]]},
                "align": {"wall_s_per_episode": sum(walls) / 50}}
    if seed == 0 and cell in ("base", "bo4_critic"):
        path = P4 / ("eval-50.json" if cell == "base" else "bo4-critic-50.json")
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return {"eval": data.get("eval", data), "align": data.get("align", {})}


def main() -> None:
    base = {s: _load("base", s) for s in SEEDS}
    rows = []
    for cell, label, nfe in CELLS:
        per_seed = {s: _load(cell, s) for s in SEEDS}
        done = [s for s in SEEDS if per_seed[s] is not None]
        if not done:
            continue
        succ = {s: sum(per_seed[s]["eval"]["successes"]) for s in done}
        n = 50 * len(done)
        k = sum(succ.values())
        lo, hi = wilson_interval(k, n)
        base_k = sum(sum(base[s]["eval"]["successes"]) for s in done)
        walls = [per_seed[s]["align"].get("wall_s_per_episode") for s in done if per_seed[s]["align"]]
        rows.append({"cell": label, "nfe_per_chunk": nfe,
                     "per_seed": " / ".join(str(succ.get(s, "-")) for s in SEEDS), "seeds": len(done),
                     "success": f"{k}/{n} = {100 * k / n:.0f}%", "wilson95": f"[{100 * lo:.0f}, {100 * hi:.0f}]",
                     "gain_points": "" if cell == "base" else f"{100 * (k - base_k) / n:+.0f}",
                     "wall_s_per_episode": f"{sum(walls) / len(walls):.1f}" if walls else ""})
    with (HERE / "table.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    head = "| cell | NFE / chunk | seeds 0 / 1 / 2 | pooled | Wilson 95% | gain vs base (same seeds) | wall s / episode |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['cell']} | {r['nfe_per_chunk']} | {r['per_seed']} | {r['success']} | {r['wilson95']} | "
              f"{r['gain_points']} | {r['wall_s_per_episode']} |" for r in rows]
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
