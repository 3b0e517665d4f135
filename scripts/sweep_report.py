"""Learning-rate x optimizer-option sweep from several `ttf gap` report directories, in one picture.

    python -m ttfkit.scripts.sweep_report outputs/sweep/* --out outputs/sweep

Each directory is one `ttf gap` study on the same data and schedule (typically one optimizer config
per directory and an ``--lr`` grid inside it). Curves are labelled by optimizer plus the directory's
``optim_options`` (e.g. ``dopr-adamw damping=0.001``). Writes ``sweep.png`` (validation loss and
closed-loop success over training, one column per learning rate, seeds averaged) and ``sweep.md``
(per label and lr: best and final validation loss, best and final success).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from ttfkit.scripts.gap_report import CheckpointRow, read_csv

__all__ = ["load_sweep", "write_sweep", "main"]


def load_sweep(dirs: list[str | Path]) -> dict[tuple[str, float], dict[int, list[CheckpointRow]]]:
    """{(label, lr): {step: rows over seeds}} from the gap directories."""
    curves: dict[tuple[str, float], dict[int, list[CheckpointRow]]] = defaultdict(lambda: defaultdict(list))
    for d in map(Path, dirs):
        config_path, csv_path = d / "gap_config.json", d / "checkpoints.csv"
        for p in (config_path, csv_path):
            if not p.is_file():
                raise FileNotFoundError(f"{d} is not a finished `ttf gap` directory: {p.name} is missing")
        options = json.loads(config_path.read_text()).get("optim_options") or {}
        suffix = "".join(f" {k}={v:g}" if isinstance(v, float) else f" {k}={v}" for k, v in sorted(options.items()))
        for row in read_csv(csv_path):
            curves[(row.optimizer + suffix, row.lr)][row.step].append(row)
    return curves


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="`ttf gap` report directories")
    parser.add_argument("--out", required=True, help="where sweep.png and sweep.md go")
    args = parser.parse_args(argv)
    print(write_sweep(load_sweep(args.dirs), args.out))
    print(f"plot: {Path(args.out) / 'sweep.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
