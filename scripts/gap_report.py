"""TTF-gap report: from one row per evaluated checkpoint to `checkpoints.csv`, `report.md` and `gap.png`.

A row is one checkpoint of one training run, keyed by (optimizer, seed, lr, step), with its training
and validation loss and its closed-loop success (fraction in [0, 1], with a Wilson 95% interval over
``episodes`` evaluation episodes). Everything here is pure bookkeeping and statistics; the study that
produces the rows is ``ttfkit.scripts.gap``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from scipy import stats

from ttfkit.envs.evaluate import wilson_interval

__all__ = ["CheckpointRow", "RunSummary", "read_csv", "write_csv", "summarize", "newcombe_interval", "best_difference",
           "difference_sign", "headline", "write_report", "plot_gap", "wilson_interval"]


@dataclass(frozen=True)
class CheckpointRow:
    """One evaluated checkpoint (the columns of checkpoints.csv, in order)."""

    optimizer: str
    seed: int
    lr: float
    step: int
    train_loss: float
    val_loss: float
    success: float
    success_ci_low: float
    success_ci_high: float
    episodes: int

    @property
    def run(self) -> tuple[str, float, int]:
        return (self.optimizer, self.lr, self.seed)


_COLUMNS = [f.name for f in fields(CheckpointRow)]
_TYPES = {f.name: {"str": str, "int": int, "float": float}[f.type] for f in fields(CheckpointRow)}


def write_csv(rows: list[CheckpointRow], path: str | Path) -> None:
    """Write rows sorted by (optimizer, lr, seed, step); atomic (temp file + rename)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_COLUMNS)
        writer.writeheader()
        for row in sorted(rows, key=lambda r: (r.optimizer, r.lr, r.seed, r.step)):
            writer.writerow(asdict(row))
    tmp.replace(path)


def read_csv(path: str | Path) -> list[CheckpointRow]:
    """Rows of a checkpoints.csv written by :func:`write_csv`; a missing column is an error."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected {_COLUMNS}")
        return [CheckpointRow(**{k: _TYPES[k](r[k]) for k in _COLUMNS}) for r in reader]


@dataclass(frozen=True)
class RunSummary:
    """Per (optimizer, lr): statistics over seeds of the checkpoint series.

    best_success: mean over seeds of each run's best checkpoint success (and its std over seeds);
    best_ci: Wilson interval pooling the episodes of those best checkpoints;
    last3_success: mean over seeds of the mean success of each run's last three checkpoints;
    best_val_loss: mean over seeds of each run's lowest validation loss;
    spearman: rank correlation of validation loss and success over each run's checkpoints, averaged over
        seeds (within-run, so seed-to-seed offsets do not count; nan if constant);
    picked_success: mean success of the checkpoint with the lowest validation loss in each run;
    regret: best_success - picked_success (what selecting by validation loss costs).
    """

    optimizer: str
    lr: float
    n_seeds: int
    best_success: float
    best_success_std: float
    best_ci: tuple[float, float]
    last3_success: float
    best_val_loss: float
    spearman: float
    picked_success: float
    regret: float


def summarize(rows: list[CheckpointRow]) -> list[RunSummary]:
    """One summary per (optimizer, lr), in order of first appearance."""
    runs: dict[tuple[str, float, int], list[CheckpointRow]] = {}
    for row in rows:
        runs.setdefault(row.run, []).append(row)
    groups: dict[tuple[str, float], list[list[CheckpointRow]]] = {}
    for (opt, lr, _), series in runs.items():
        groups.setdefault((opt, lr), []).append(sorted(series, key=lambda r: r.step))
    out = []
    for (opt, lr), series_list in groups.items():
        best = [max(s, key=lambda r: r.success) for s in series_list]
        picked = [min(s, key=lambda r: r.val_loss) for s in series_list]
        rhos = [_spearman([r.val_loss for r in s], [r.success for r in s]) for s in series_list]
        rho = float(np.nanmean(rhos)) if not all(math.isnan(x) for x in rhos) else float("nan")
        best_mean = float(np.mean([r.success for r in best]))
        picked_mean = float(np.mean([r.success for r in picked]))
        out.append(
            RunSummary(
                optimizer=opt,
                lr=lr,
                n_seeds=len(series_list),
                best_success=best_mean,
                best_success_std=float(np.std([r.success for r in best])),
                best_ci=wilson_interval(sum(round(r.success * r.episodes) for r in best), sum(r.episodes for r in best)),
                last3_success=float(np.mean([np.mean([r.success for r in s[-3:]]) for s in series_list])),
                best_val_loss=float(np.mean([min(r.val_loss for r in s) for s in series_list])),
                spearman=rho,
                picked_success=picked_mean,
                regret=best_mean - picked_mean,
            )
        )
    return out


def _spearman(x: list[float], y: list[float]) -> float:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def newcombe_interval(a: tuple[float, float, float], b: tuple[float, float, float]) -> tuple[float, float]:
    """95% interval of p_a - p_b from each proportion's (estimate, Wilson low, Wilson high) (Newcombe 1998)."""
    (pa, la, ua), (pb, lb, ub) = a, b
    d = pa - pb
    return d - math.hypot(pa - la, ub - pb), d + math.hypot(ua - pa, pb - lb)


def best_difference(dopr: RunSummary, base: RunSummary) -> tuple[float, tuple[float, float]]:
    """Best-checkpoint success of ``dopr`` minus ``base`` and its 95% Newcombe interval (from each one's Wilson
    interval of the pooled episodes: episode noise, not seed-to-seed spread)."""
    return dopr.best_success - base.best_success, newcombe_interval((dopr.best_success, *dopr.best_ci),
                                                                    (base.best_success, *base.best_ci))


def difference_sign(ci: tuple[float, float]) -> int:
    """+1 when the interval of a difference lies above 0, -1 when below, 0 when it includes 0."""
    return 1 if ci[0] > 0 else -1 if ci[1] < 0 else 0


def headline(summaries: list[RunSummary]) -> str:
    """One plain sentence per DoPr variant against its base optimizer, at each one's best lr; the verdict is
    the sign of the difference's Newcombe interval (the across-settings report's verdict too)."""
    best = {}
    for s in summaries:
        if s.optimizer not in best or s.best_success > best[s.optimizer].best_success:
            best[s.optimizer] = s
    sentences = []
    for name, dopr in best.items():
        if not name.startswith("dopr-") or name[len("dopr-"):] not in best:
            continue
        base = best[name[len("dopr-"):]]
        diff, ci = best_difference(dopr, base)
        sign = difference_sign(ci)
        if sign > 0:
            verdict = f"{name} beat {base.optimizer} here"
        elif sign < 0:
            verdict = f"{name} did worse than {base.optimizer} here"
        elif diff == 0:
            verdict = f"{name} tied {base.optimizer} here"
        else:
            better = "higher" if diff > 0 else "lower"
            verdict = (f"{name} was {better} than {base.optimizer} here, but the 95% interval of the difference "
                       "includes 0 (no clear difference)")
        sentences.append(
            f"{verdict}: best-checkpoint success {dopr.best_success:.0%} {_fmt_ci(dopr.best_ci)} vs "
            f"{base.best_success:.0%} {_fmt_ci(base.best_ci)}, difference {diff:+.0%} [{ci[0]:+.0%}, {ci[1]:+.0%}] "
            f"(95% Newcombe interval, episodes pooled over seeds; {dopr.n_seeds} vs {base.n_seeds} seeds)."
        )
    return " ".join(sentences) if sentences else "No DoPr/base optimizer pair was run, so there is no comparison."


def _fmt_rho(rho: float) -> str:
    return "n/a (constant)" if math.isnan(rho) else f"{rho:+.2f}"


def _fmt_ci(ci: tuple[float, float]) -> str:
    return f"[{ci[0]:.0%}, {ci[1]:.0%}]"


def write_report(rows: list[CheckpointRow], out_dir: str | Path, title: str, details: str = "") -> str:
    """Write report.md (headline, table, notes) into out_dir and return its text."""
    summaries = summarize(rows)
    lines = [
        f"# {title}",
        "",
        headline(summaries),
        "",
        "| optimizer | lr | seeds | best success (mean ± std) [95% CI] | last-3 success | best val loss "
        "| Spearman(val loss, success) | success at min val loss | selection regret |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.optimizer} | {s.lr:g} | {s.n_seeds} | {s.best_success:.2f} ± {s.best_success_std:.2f} "
            f"{_fmt_ci(s.best_ci)} | {s.last3_success:.2f} | {s.best_val_loss:.4f} | {_fmt_rho(s.spearman)} "
            f"| {s.picked_success:.2f} | {s.regret:+.2f} |"
        )
    lines += [
        "",
        "Success is the fraction of evaluation episodes solved with the checkpoint's EMA weights. "
        "Spearman < 0 means lower validation loss went with higher success; selection regret is what "
        "picking the checkpoint with the lowest validation loss costs against the best checkpoint.",
    ]
    if details:
        lines += ["", details]
    text = "\n".join(lines) + "\n"
    Path(out_dir, "report.md").write_text(text)
    return text


def plot_gap(rows: list[CheckpointRow], path: str | Path, aligned: list | None = None) -> None:
    """gap.png: validation loss and success over training per optimizer, and their scatter; with
    ``aligned`` (``gap_align.AlignRow``s) the aligned checkpoints' success as markers beside the curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_succ, ax_scatter) = plt.subplots(1, 3, figsize=(15, 4.2))
    runs: dict[tuple[str, float, int], list[CheckpointRow]] = {}
    for row in rows:
        runs.setdefault(row.run, []).append(row)
    labels = sorted({(opt, lr) for opt, lr, _ in runs})
    colors = {label: plt.cm.tab10(i % 10) for i, label in enumerate(labels)}
    for (opt, lr, seed), series in sorted(runs.items()):
        series = sorted(series, key=lambda r: r.step)
        steps = [r.step for r in series]
        c = colors[(opt, lr)]
        label = f"{opt} lr={lr:g}" if seed == min(s for o, l, s in runs if (o, l) == (opt, lr)) else None
        ax_loss.plot(steps, [r.val_loss for r in series], "-o", ms=3, color=c, label=label, alpha=0.8)
        ax_succ.plot(steps, [r.success for r in series], "-o", ms=3, color=c, label=label, alpha=0.8)
        ax_scatter.scatter([r.val_loss for r in series], [r.success for r in series], color=c, s=18, label=label)
    for i, (key, grp) in enumerate(sorted(_aligned_points(aligned or []).items())):
        step, method, reward, n = key
        ax_succ.scatter([step] * len(grp), grp, marker="*^vsPD"[i % 6], s=60, zorder=3, color="black",
                        alpha=0.7, label=f"aligned: {method} {reward} {n}x")
    ax_loss.set(xlabel="training step", ylabel="validation loss", title="validation loss")
    ax_succ.set(xlabel="training step", ylabel="closed-loop success", title="success", ylim=(-0.05, 1.05))
    ax_scatter.set(xlabel="validation loss", ylabel="closed-loop success", title="loss vs success per checkpoint",
                   ylim=(-0.05, 1.05))
    for ax in (ax_loss, ax_succ, ax_scatter):
        ax.grid(alpha=0.3)
    ax_succ.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _aligned_points(aligned: list) -> dict[tuple, list[float]]:
    """{(step, method, reward, budget): [success per run]} of the alignment stage's rows."""
    out: dict[tuple, list[float]] = {}
    for r in aligned:
        out.setdefault((r.step, r.method, r.reward, r.particles), []).append(r.successes / r.episodes)
    return out
