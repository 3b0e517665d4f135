"""The third setting's measurement grid from ttf gap's caches (run from the repository root):
    python docs/results/2026-11-30/align-6/table.py > docs/results/2026-11-30/align-6/basketball_grid.md
Every CKPT/align/<method>-<reward>-x<N>.json of the three training seeds' final checkpoints: per-seed successes,
pooled rate with its Wilson 95% interval, the gain over the base policy on the same seeds and episodes, NFE and
simulator steps per chunk, wall seconds per episode (shared cores: upper bounds). The critic here is ttf gap's,
refit once (--critic-refit-episodes 100)."""
import json
import re
from pathlib import Path

from ttfkit.envs.evaluate import wilson_interval

ROOT = Path("outputs/align6/basketball-10/runs")
NAME = re.compile(r"^(best-of-n|smc|guidance|weighted)-(.+)-x(\d+)$")


def main() -> None:
    base, cells = {}, {}
    for seed in range(3):
        c = ROOT / f"adamw_lr0.001_seed{seed}" / "checkpoints" / "step_001500"
        base[seed] = sum(json.loads((c / "eval.json").read_text())["successes"])
        for f in sorted((c / "align").glob("*.json")):
            m = NAME.match(f.stem)
            if m:
                cells.setdefault((m.group(2), m.group(1), int(m.group(3))), {})[seed] = json.loads(f.read_text())
    kb = sum(base.values())
    lo, hi = wilson_interval(kb, 150)
    print(f"Base policy: {' / '.join(str(base[s]) for s in range(3))} of 50 per seed, pooled {kb}/150 = "
          f"{100 * kb / 150:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}].\n")
    print("| reward | method | budget (x base NFE) | seed 0 | seed 1 | seed 2 | pooled | Wilson 95% | gain vs base, "
          "same seeds | NFE / chunk | sim steps / chunk | wall s / episode |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (reward, method, n), by_seed in sorted(cells.items(), key=lambda kv: (kv[0][0] == "rollout", kv[0][1], kv[0][2])):
        seeds = sorted(by_seed)
        ks = {s: sum(by_seed[s]["eval"]["successes"]) for s in seeds}
        k, total = sum(ks.values()), 50 * len(seeds)
        lo, hi = wilson_interval(k, total)
        gain = 100 * (k - sum(base[s] for s in seeds)) / total
        mean = lambda key: sum(by_seed[s]["align"][key] for s in seeds) / len(seeds)  # noqa: E731
        print(f"| {reward} | {method} | {n}x | " + " | ".join(f"{ks[s]}/50" if s in ks else "–" for s in range(3))
              + f" | {k}/{total} = {100 * k / total:.0f}% | [{100 * lo:.0f}, {100 * hi:.0f}] | {gain:+.0f} | "
              f"{mean('nfe_per_chunk'):.0f} | {mean('sim_steps_per_chunk'):.0f} | {mean('wall_s_per_episode'):.1f} |")


if __name__ == "__main__":
    main()
