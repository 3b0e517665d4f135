"""Gather the finished settings of run.sh into this folder and write the across-settings report.

    python docs/results/2026-11-30/dopr-study/collect.py [--src outputs/dopr-study]

logs/queue.log: run.sh's start and end lines per setting. Per finished setting NAME (its checkpoints.csv
exists): NAME/{report.md, checkpoints.csv, gap.png, gap_config.json, tune.md, tune.json}; logs/NAME.log
(the raw log without its progress-bar updates, the final line of each bar kept); tuning.md/csv:
validation loss and tuning success of every checkpoint of every tuning run, and per (setting, optimizer)
Spearman(val loss, tuning success) over those checkpoints (all lrs of the grid together: does a lower
validation loss go with more success across lrs?); then ``sweep_report --setting`` over the finished
settings into settings/.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
from scipy import stats

from ttfkit.scripts.sweep_report import main as sweep_report

HERE = Path(__file__).resolve().parent
ORDER = ("stick-pull-10", "peg-insert-side-5", "shelf-place-10", "peg-insert-side-25", "stick-pull-10-muon",
         "shelf-place-10-noise", "stick-pull-10-unet", "peg-insert-side-5-muon")
_BAR = re.compile(r"\|\s*\d+/\d+ \[")


def filter_log(raw: str) -> str:
    """Drop progress-bar redraws: keep each carriage-return segment that is not a bar, and a bar's last state."""
    kept, last_bar = [], None
    for line in raw.replace("\r", "\n").splitlines():
        if _BAR.search(line):
            prefix = line.split(":")[0]
            if last_bar is not None and last_bar.split(":")[0] != prefix:
                kept.append(last_bar)
            last_bar = line
            continue
        if last_bar is not None:
            kept.append(last_bar)
            last_bar = None
        if line.strip():
            kept.append(line)
    if last_bar is not None:
        kept.append(last_bar)
    return "\n".join(kept) + "\n"


def tuning_rows(setting: str, src: Path) -> list[dict]:
    rows = []
    for ckpt in sorted((src / "tune" / "runs").glob("*/checkpoints/step_*")):
        result = ckpt / "eval_tune.json"
        if not result.is_file():
            continue
        meta = json.loads((ckpt / "config.json").read_text())["metadata"]
        successes = json.loads(result.read_text())["successes"]
        rows.append({"setting": setting, "optimizer": meta["train_config"]["optim"],
                     "lr": meta["train_config"]["lr"], "step": meta["step"], "val_loss": meta["val_loss"],
                     "tune_success": sum(successes) / len(successes), "tune_episodes": len(successes)})
    return rows


def tuning_table(rows: list[dict]) -> str:
    lines = ["| setting | optimizer | lr | val loss per checkpoint (steps 500 / 1000 / 1500; U-Net 200 / 400) | "
             "tuning success | "
             "Spearman(val loss, tuning success) over all the optimizer's tuning checkpoints |",
             "|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["setting"], r["optimizer"]), []).append(r)
    for (setting, opt), group in groups.items():
        val, succ = [r["val_loss"] for r in group], [r["tune_success"] for r in group]
        rho = stats.spearmanr(val, succ).statistic if np.ptp(val) and np.ptp(succ) else float("nan")
        for lr in sorted({r["lr"] for r in group}):
            series = sorted((r for r in group if r["lr"] == lr), key=lambda r: r["step"])
            val_cells = " / ".join(f"{r['val_loss']:.3f}" for r in series)
            succ_cells = " / ".join(f"{r['tune_success']:.0%}" for r in series)
            rho_cell = ("n/a" if np.isnan(rho) else f"{rho:+.2f}") + f" (n={len(group)})"
            lines.append(f"| {setting} | {opt} | {lr:g} | {val_cells} | {succ_cells} | {rho_cell} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default="outputs/dopr-study")
    args = parser.parse_args()
    src = Path(args.src)
    finished, rows = [], []
    if (src / "logs" / "queue.log").is_file():  # run.sh's start/done lines with the load average
        (HERE / "logs").mkdir(exist_ok=True)
        shutil.copyfile(src / "logs" / "queue.log", HERE / "logs" / "queue.log")
    for name in ORDER:
        d = src / name
        log = src / "logs" / f"{name}.log"
        if log.is_file():
            (HERE / "logs").mkdir(exist_ok=True)
            (HERE / "logs" / f"{name}.log").write_text(filter_log(log.read_text(errors="replace")))
        if d.is_dir():
            rows += tuning_rows(name, d)
        if not (d / "checkpoints.csv").is_file():
            continue
        finished.append(name)
        (HERE / name).mkdir(exist_ok=True)
        for f in ("report.md", "checkpoints.csv", "gap.png", "gap_config.json", "tune/tune.md", "tune/tune.json"):
            shutil.copyfile(d / f, HERE / name / Path(f).name)
    if rows:
        with open(HERE / "tuning.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        (HERE / "tuning.md").write_text(tuning_table(rows))
    if finished:
        argv = [a for name in finished for a in ("--setting", f"{name}={src / name}")]
        sweep_report(argv + ["--out", str(HERE / "settings")])
    print("finished settings:", ", ".join(finished) or "none")


if __name__ == "__main__":
    main()
