"""The issue's measurement grid from every cached evaluation (run from the repository root):
    python docs/results/2026-11-30/align-3/grid.py outputs/align docs/results/2026-11-30/align-3
Per setting, every (reward, method, budget) found in CKPT/align{,_extra}/<method>-<reward>-x<N>.json of
the three training seeds' final checkpoints: per-seed successes, pooled rate with its Wilson 95% interval,
the gain over the base policy on the same seeds, mean NFE and simulator steps per chunk, wall seconds per
episode (loaded cores: upper bounds). Writes grid.md and grid.png."""
import json
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ttfkit.envs.evaluate import wilson_interval  # noqa: E402

SETTINGS = {"stick10": "stick-pull, 10 demos", "shelf10": "shelf-place, 10 demos",
            "peg5": "peg-insert-side, 5 demos"}
METHODS = ("best-of-n", "smc", "guidance")
REWARDS = {"critic": "critic (first fit)", "critic-blocks": "critic (first fit, block encoding)",
           "critic-refit": "critic refit once", "critic-refit2": "critic refit twice",
           "critic-base200": "critic on 200 base episodes", "rollout": "rollout (simulator)"}
NAME = re.compile(r"^(best-of-n|smc|guidance)-(.+)-x(\d+)$")


def ckpt(root, setting, seed):
    return root / setting / "runs" / f"adamw_lr0.001_seed{seed}" / "checkpoints" / "step_001500"


def cells(root, setting):
    """{(reward, method, n): {seed: json}} and {seed: base successes of the first 50 episodes}."""
    found, base = {}, {}
    for seed in range(3):
        c = ckpt(root, setting, seed)
        if (c / "eval.json").exists():
            base[seed] = json.loads((c / "eval.json").read_text())["successes"][:50]
        for folder in ("align", "align_extra"):
            for f in sorted((c / folder).glob("*.json")):
                m = NAME.match(f.stem)
                if m and m.group(2) in REWARDS:
                    found.setdefault((m.group(2), m.group(1), int(m.group(3))), {})[seed] = json.loads(f.read_text())
    return found, base


def main(root: Path, out: Path) -> None:
    lines = []
    fig, axes = plt.subplots(1, len(SETTINGS), figsize=(7 * len(SETTINGS), 7))
    for ax, (setting, title) in zip(axes, SETTINGS.items()):
        found, base_eps = cells(root, setting)
        base = {s: sum(v) for s, v in base_eps.items()}
        kb = sum(base.values())
        lo, hi = wilson_interval(kb, 50 * len(base))
        lines += [f"### {title}", "",
                  f"Base policy: {' / '.join(str(base[s]) for s in sorted(base))} of 50 per seed, "
                  f"pooled {kb}/{50 * len(base)} = {100 * kb / (50 * len(base)):.0f}% [{100 * lo:.0f}, {100 * hi:.0f}].", "",
                  "| reward | method | budget (x base NFE) | seed 0 | seed 1 | seed 2 | pooled | Wilson 95% | gain vs base, same seeds "
                  "| NFE / chunk | sim steps / chunk | wall s / episode |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        labels, rates, errs = [f"base ({len(base)} seeds)"], [kb / (50 * len(base))], [(kb / (50 * len(base)) - lo, hi - kb / (50 * len(base)))]
        order = sorted(found, key=lambda k: (list(REWARDS).index(k[0]), METHODS.index(k[1]), k[2]))
        for key in order:
            per = found[key]
            eps = {s: d["eval"]["successes"][:50] for s, d in per.items()}  # some cells ran fewer than 50
            got = {s: sum(e) for s, e in eps.items()}
            k, n = sum(got.values()), sum(len(e) for e in eps.values())
            l, h = wilson_interval(k, n)
            gain = 100 * (k - sum(sum(base_eps[s][:len(e)]) for s, e in eps.items())) / n  # same episodes
            a = [d["align"] for d in per.values()]
            mean = lambda f: sum(x.get(f, 0.0) for x in a) / len(a)
            seeds = " | ".join(f"{got[s]}/{len(eps[s])}" if s in got else "–" for s in range(3))
            lines.append(f"| {REWARDS[key[0]]} | {key[1]} | {key[2]}x | {seeds} | {k}/{n} = {100 * k / n:.0f}% "
                         f"| [{100 * l:.0f}, {100 * h:.0f}] | {gain:+.0f} | {mean('nfe_per_chunk'):.0f} "
                         f"| {mean('sim_steps_per_chunk'):.0f} | {mean('wall_s_per_episode'):.1f} |")
            labels.append(f"{REWARDS[key[0]]}, {key[1]} {key[2]}x ({len(got)} seed{'s' if len(got) > 1 else ''})")
            rates.append(k / n)
            errs.append((k / n - l, h - k / n))
        lines.append("")
        colors = ["tab:gray"] + ["tab:orange" if "rollout" in lab else "tab:blue" for lab in labels[1:]]
        ax.barh(range(len(labels)), rates, xerr=list(zip(*errs)), color=colors, alpha=0.75, capsize=3)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.axvline(rates[0], color="k", lw=0.8, ls="--")
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("success (pooled episodes, Wilson 95%); blue: deployable critic, orange: simulator")
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out / "grid.png", dpi=110)
    (out / "grid.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
