"""Sweeps and settings from several `ttf gap` report directories, each in one picture.

    python -m ttfkit.scripts.sweep_report outputs/sweep/* --out outputs/sweep
    python -m ttfkit.scripts.sweep_report --setting "stick-pull 10=outputs/stick" \
        --setting "shelf-place 10=outputs/shelf,outputs/shelf_exact@exact" --out outputs/settings

Each directory is one `ttf gap` study on the same data and schedule (typically one optimizer config
per directory and an ``--lr`` grid inside it). Curves are labelled by optimizer plus the directory's
``optim_options`` (e.g. ``dopr-adamw damping=0.001``). Writes ``sweep.png`` (validation loss and
closed-loop success over training, one column per learning rate, seeds averaged) and ``sweep.md``
(per label and lr: best and final validation loss, best and final success).

With ``--setting NAME=SRC[,SRC...]`` (repeatable; SRC a gap directory or a checkpoints.csv, optionally
``@TAG`` appended to label its optimizers, e.g. runs made under another DoPr default) every DoPr label
``dopr-X...`` of a setting is paired with its base ``X`` (same tag first, else the one base label) and
the report gives, per setting and pair, the success difference DoPr minus base at the best and at the
final checkpoint with 95% Newcombe intervals (from the Wilson intervals of the pooled episodes; seeds
pooled, so the interval covers episode noise, not seed-to-seed spread, which the table gives as std),
validation losses, within-run Spearman(val loss, success) and selection regret: ``settings.md``,
``settings.csv`` and ``settings.png`` (the differences with their intervals, one row per setting and pair).
A label run at several learning rates is represented by its best one on the evaluation episodes, which
flatters it; the table says so ("lr picked on eval"). A setting whose every source has ``tune/tune.json``
(``ttf gap --tune-episodes``) picked its lrs on tuning runs and episodes: "(tuned)".
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from ttfkit.scripts.gap_report import (
    CheckpointRow,
    RunSummary,
    best_difference,
    difference_sign,
    newcombe_interval,
    read_csv,
    summarize,
    wilson_interval,
)

__all__ = ["load_sweep", "write_sweep", "load_setting", "compare_setting", "newcombe_interval", "write_settings",
           "main"]


def load_sweep(dirs: list[str | Path]) -> dict[tuple[str, float], dict[int, list[CheckpointRow]]]:
    """{(label, lr): {step: rows over seeds}} from the gap directories."""
    curves: dict[tuple[str, float], dict[int, list[CheckpointRow]]] = defaultdict(lambda: defaultdict(list))
    for d in map(Path, dirs):
        config_path, csv_path = d / "gap_config.json", d / "checkpoints.csv"
        for p in (config_path, csv_path):
            if not p.is_file():
                raise FileNotFoundError(f"{d} is not a finished `ttf gap` directory: {p.name} is missing")
        suffix = _options_suffix(config_path)
        for row in read_csv(csv_path):
            curves[(row.optimizer + suffix, row.lr)][row.step].append(row)
    return curves


def _options_suffix(config_path: Path) -> str:
    options = json.loads(config_path.read_text()).get("optim_options") or {} if config_path.is_file() else {}
    return "".join(f" {k}={v:g}" if isinstance(v, float) else f" {k}={v}" for k, v in sorted(options.items()))


def write_sweep(curves, out: str | Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = sorted({label for label, _ in curves})
    lrs = sorted({lr for _, lr in curves})
    fig, axes = plt.subplots(2, len(lrs), figsize=(4 * len(lrs), 6), squeeze=False, sharey="row")
    lines = ["| optimizer | lr | seeds | best val loss | final val loss | best success | final success |",
             "|---|---|---|---|---|---|---|"]
    for j, lr in enumerate(lrs):
        for k, label in enumerate(labels):
            by_step = curves.get((label, lr))
            if not by_step:
                continue
            steps = sorted(by_step)
            val = [np.mean([r.val_loss for r in by_step[s]]) for s in steps]
            succ = [np.mean([r.success for r in by_step[s]]) for s in steps]
            style = dict(color=f"C{k}", marker="o")
            axes[0, j].plot(steps, val, **style)
            axes[1, j].plot(steps, succ, **style)
            seeds = len(by_step[steps[-1]])
            lines.append(f"| {label} | {lr:g} | {seeds} | {min(val):.3f} | {val[-1]:.3f} | {max(succ):.0%} | "
                         f"{succ[-1]:.0%} |")
        axes[0, j].set_title(f"lr = {lr:g}")
        axes[1, j].set_xlabel("step")
    axes[0, 0].set_ylabel("validation loss (EMA weights)")
    axes[1, 0].set_ylabel("closed-loop success")
    axes[1, 0].set_ylim(-0.02, 1.02)
    handles = [plt.Line2D([], [], color=f"C{k}", marker="o", label=label) for k, label in enumerate(labels)]
    fig.legend(handles=handles, loc="upper center", ncol=len(labels), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(out / "sweep.png", dpi=110)
    plt.close(fig)
    text = "\n".join(lines) + "\n"
    (out / "sweep.md").write_text(text)
    return text


@dataclasses.dataclass(frozen=True)
class PairComparison:
    """DoPr label vs its base label in one setting (successes are fractions; intervals 95%)."""

    setting: str
    dopr: RunSummary
    base: RunSummary
    best_diff: float
    best_diff_ci: tuple[float, float]
    final: tuple[float, float]  # (DoPr, base) mean final-checkpoint success
    final_diff_ci: tuple[float, float]
    lr_picked_on_eval: bool
    final_std: tuple[float, float] = (float("nan"), float("nan"))  # (DoPr, base) std over seeds of final success
    lr_tuned: bool = False  # every source of the setting picked its lrs on tuning runs (tune/tune.json)

    @property
    def verdict(self) -> str:
        return {1: "DoPr wins", -1: "DoPr loses", 0: "no clear difference"}[difference_sign(self.best_diff_ci)]


def load_setting(sources: list[str]) -> list[CheckpointRow]:
    """Rows of one setting, each optimizer relabelled with its directory's optim_options and the source's
    @TAG (``SRC@TAG``), so that runs under different DoPr configs stay apart."""
    rows = []
    for source in sources:
        path, _, tag = source.partition("@")
        path = Path(path)
        csv_path = path if path.suffix == ".csv" else path / "checkpoints.csv"
        if not csv_path.is_file():
            raise FileNotFoundError(f"{source}: no checkpoints.csv at {csv_path}")
        suffix = _options_suffix(csv_path.parent / "gap_config.json") + (f" [{tag}]" if tag else "")
        rows += [dataclasses.replace(r, optimizer=r.optimizer + suffix) for r in read_csv(csv_path)]
    return rows


def compare_setting(name: str, rows: list[CheckpointRow]) -> list[PairComparison]:
    """Every DoPr label of the setting against its base (see the module docstring)."""
    summaries = summarize(rows)
    best: dict[str, RunSummary] = {}
    n_lrs: dict[str, int] = defaultdict(int)
    for summary in summaries:
        n_lrs[summary.optimizer] += 1
        if summary.optimizer not in best or summary.best_success > best[summary.optimizer].best_success:
            best[summary.optimizer] = summary
    out = []
    for label, dopr in best.items():
        optimizer, _, rest = label.partition(" ")
        if not optimizer.startswith("dopr-"):
            continue
        bases = [other for other in best if other.split(" ")[0] == optimizer[len("dopr-"):]]
        tag = rest[rest.index("["):] if "[" in rest else ""
        same = [b for b in bases if tag and b.endswith(tag)]
        base_label = same[0] if same else bases[0] if len(bases) == 1 else None
        if base_label is None:
            continue
        base = best[base_label]
        finals = {lab: _final(rows, lab, best[lab].lr) for lab in (label, base_label)}
        best_diff, best_diff_ci = best_difference(dopr, base)
        out.append(PairComparison(
            setting=name, dopr=dopr, base=base, best_diff=best_diff, best_diff_ci=best_diff_ci,
            final=(finals[label][0], finals[base_label][0]),
            final_diff_ci=newcombe_interval(finals[label][:3], finals[base_label][:3]),
            lr_picked_on_eval=n_lrs[label] > 1 or n_lrs[base_label] > 1,
            final_std=(finals[label][3], finals[base_label][3])))
    return out


def _final(rows: list[CheckpointRow], label: str, lr: float) -> tuple[float, float, float, float]:
    """(mean over seeds, pooled Wilson low, high, std over seeds) of each run's last checkpoint."""
    last: dict[int, CheckpointRow] = {}
    for r in rows:
        if r.optimizer == label and r.lr == lr and (r.seed not in last or r.step > last[r.seed].step):
            last[r.seed] = r
    wins = sum(round(r.success * r.episodes) for r in last.values())
    successes = [r.success for r in last.values()]
    return (float(np.mean(successes)), *wilson_interval(wins, sum(r.episodes for r in last.values())),
            float(np.std(successes)))


def write_settings(comparisons: list[PairComparison], out: str | Path) -> str:
    """settings.md, settings.csv and settings.png; returns the markdown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pct = lambda x: f"{x:+.0%}" if round(x * 100) else "0%"  # noqa: E731
    rho = lambda x: "n/a" if math.isnan(x) else f"{x:+.2f}"  # noqa: E731
    lines = ["| setting | DoPr vs base | lr (DoPr / base) | seeds | DoPr best [95% CI] | base best [95% CI] | "
             "best diff [95% CI] | final (DoPr / base) | final diff [95% CI] | val loss (DoPr / base) | "
             "Spearman (DoPr / base) | regret (DoPr / base) | verdict |", "|" + "---|" * 13]
    records = []
    for c in comparisons:
        d, b = c.dopr, c.base
        lr = (f"{d.lr:g} / {b.lr:g}" + (" (lr picked on eval)" if c.lr_picked_on_eval else "")
              + (" (tuned)" if c.lr_tuned else ""))
        lines.append(
            f"| {c.setting} | {d.optimizer} vs {b.optimizer} | {lr} | {d.n_seeds} / {b.n_seeds} | "
            f"{d.best_success:.0%} ± {d.best_success_std:.0%} [{d.best_ci[0]:.0%}, {d.best_ci[1]:.0%}] | "
            f"{b.best_success:.0%} ± {b.best_success_std:.0%} [{b.best_ci[0]:.0%}, {b.best_ci[1]:.0%}] | "
            f"{pct(c.best_diff)} [{pct(c.best_diff_ci[0])}, {pct(c.best_diff_ci[1])}] | "
            f"{c.final[0]:.0%} ± {c.final_std[0]:.0%} / {c.final[1]:.0%} ± {c.final_std[1]:.0%} | "
            f"{pct(c.final[0] - c.final[1])} [{pct(c.final_diff_ci[0])}, {pct(c.final_diff_ci[1])}] | "
            f"{d.best_val_loss:.3f} / {b.best_val_loss:.3f} | {rho(d.spearman)} / {rho(b.spearman)} | "
            f"{d.regret:+.2f} / {b.regret:+.2f} | {c.verdict} |")
        records.append({"setting": c.setting, "dopr": d.optimizer, "base": b.optimizer, "dopr_lr": d.lr,
                        "base_lr": b.lr, "dopr_seeds": d.n_seeds, "base_seeds": b.n_seeds,
                        "dopr_best": d.best_success, "base_best": b.best_success, "best_diff": c.best_diff,
                        "best_diff_low": c.best_diff_ci[0], "best_diff_high": c.best_diff_ci[1],
                        "dopr_final": c.final[0], "base_final": c.final[1], "dopr_final_std": c.final_std[0],
                        "base_final_std": c.final_std[1], "final_diff": c.final[0] - c.final[1],
                        "final_diff_low": c.final_diff_ci[0], "final_diff_high": c.final_diff_ci[1],
                        "dopr_val_loss": d.best_val_loss,
                        "base_val_loss": b.best_val_loss, "dopr_spearman": d.spearman, "base_spearman": b.spearman,
                        "dopr_regret": d.regret, "base_regret": b.regret, "lr_picked_on_eval": c.lr_picked_on_eval,
                        "lr_tuned": c.lr_tuned, "verdict": c.verdict})
    if records:
        with open(out / "settings.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.55 * max(len(comparisons), 1)))
    for i, c in enumerate(comparisons):
        y = len(comparisons) - 1 - i
        ax.errorbar(c.best_diff, y + 0.12, xerr=[[c.best_diff - c.best_diff_ci[0]], [c.best_diff_ci[1] - c.best_diff]],
                    fmt="o", color="C0", capsize=3, label="best checkpoint" if i == 0 else None)
        fd = c.final[0] - c.final[1]
        ax.errorbar(fd, y - 0.12, xerr=[[fd - c.final_diff_ci[0]], [c.final_diff_ci[1] - fd]], fmt="s",
                    mfc="white", color="C1", capsize=3, label="final checkpoint" if i == 0 else None)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(comparisons)))
    ax.set_yticklabels([f"{c.setting}: {c.dopr.optimizer} vs {c.base.optimizer}" for c in reversed(comparisons)],
                       fontsize=8)
    ax.set_xlabel("closed-loop success, DoPr minus base (95% interval, episodes pooled over seeds)")
    ax.set_xlim(-1, 1)
    ax.grid(axis="x", alpha=0.3)
    if comparisons:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "settings.png", dpi=110)
    plt.close(fig)
    text = "\n".join(lines) + "\n"
    (out / "settings.md").write_text(text)
    return text


def _is_tuned(source: str) -> bool:
    """Whether the gap directory of ``source`` (``SRC[@TAG]``) picked its lrs on tuning runs."""
    path = Path(source.partition("@")[0])
    return ((path.parent if path.suffix == ".csv" else path) / "tune" / "tune.json").is_file()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", help="`ttf gap` report directories (the lr x option sweep)")
    parser.add_argument("--setting", action="append", metavar="NAME=SRC[@TAG][,SRC...]",
                        help="one setting of the across-settings report (repeatable)")
    parser.add_argument("--out", required=True, help="where sweep.* / settings.* go")
    args = parser.parse_args(argv)
    if not args.dirs and not args.setting:
        parser.error("give gap directories (sweep) and/or --setting NAME=SRC,... (settings report)")
    if args.dirs:
        print(write_sweep(load_sweep(args.dirs), args.out))
        print(f"plot: {Path(args.out) / 'sweep.png'}")
    if args.setting:
        comparisons = []
        for spec in args.setting:
            name, sep, sources = spec.partition("=")
            if not sep or not sources:
                parser.error(f"--setting wants NAME=SRC[,SRC...], got {spec!r}")
            tuned = all(_is_tuned(src) for src in sources.split(","))
            comparisons += [dataclasses.replace(c, lr_tuned=tuned)
                            for c in compare_setting(name, load_setting(sources.split(",")))]
        print(write_settings(comparisons, args.out))
        print(f"plot: {Path(args.out) / 'settings.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
