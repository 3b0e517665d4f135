"""Tables and figure of this folder: the 3-seed Square TTF-gap study (per seed and pooled, Wilson 95%
intervals, Newcombe interval of the pooled finals' difference) and the U-Net vs MLP state policies.

    python docs/results/2026-11-30/robomimic-3/collect.py          # from the repository root

First copies the study's small files (report.md, checkpoints.csv, gap.png, gap_config.json, per-run
metrics.csv, per-checkpoint eval.json) from outputs/robomimic3/gap_square into gap_square/ here when that
folder exists; everything after reads this folder only. Writes gap_square_finals.csv and robomimic3.png and
prints the Markdown tables of README.md.
"""

import csv
import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ttfkit.envs.evaluate import wilson_interval  # noqa: E402
from ttfkit.scripts.gap_report import newcombe_interval  # noqa: E402

HERE = Path(__file__).parent
STUDY = Path("outputs/robomimic3/gap_square")
OPTIMS = ("adamw", "dopr-adamw")
NAMES = {"adamw": "AdamW", "dopr-adamw": "DoPr-AdamW"}
# the final checkpoints' episodes 20-49: seed 0's from robomimic-2, the others from this folder
EXTRA = "gap_square_{opt}_seed{seed}_step3000_seeds100020-100049.json"


def copy_study() -> None:
    if not STUDY.is_dir():
        return
    dst = HERE / "gap_square"
    dst.mkdir(exist_ok=True)
    for name in ("report.md", "checkpoints.csv", "gap.png", "gap_config.json"):
        shutil.copy(STUDY / name, dst / name)
    for run in sorted((STUDY / "runs").iterdir()):
        shutil.copy(run / "metrics.csv", dst / f"{run.name}_metrics.csv")
        for ckpt in sorted((run / "checkpoints").glob("step_*")):
            if (ckpt / "eval.json").exists():
                shutil.copy(ckpt / "eval.json", dst / f"{run.name}_{ckpt.name}_eval.json")


def ci(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{100 * lo:.1f}-{100 * hi:.1f}%"


def extra_path(opt: str, seed: int) -> Path:
    folder = HERE.parent / "robomimic-2" if seed == 0 else HERE
    return folder / EXTRA.format(opt=opt, seed=seed)


def successes(path: Path) -> list[bool]:
    return [bool(s) for s in json.loads(path.read_text())["successes"]]


def gap_tables() -> list[dict]:
    rows = list(csv.DictReader(open(HERE / "gap_square" / "checkpoints.csv")))
    seeds = sorted({int(r["seed"]) for r in rows})
    steps = sorted({int(r["step"]) for r in rows})
    by = {(r["optimizer"], int(r["seed"]), int(r["step"])): r for r in rows}
    print("| optimizer | seed | " + " | ".join(f"step {s}: success (20 ep.) / val loss" for s in steps)
          + " | final, 50 ep. | Wilson 95% |")
    print("|---|---|" + "---|" * len(steps) + "---|---|")
    finals = []
    for opt in OPTIMS:
        for seed in seeds:
            cells = []
            for step in steps:
                r = by[(opt, seed, step)]
                k = round(float(r["success"]) * int(r["episodes"]))
                cells.append(f"{k}/{r['episodes']} / {float(r['val_loss']):.3f}")
            first = successes(HERE / "gap_square" / f"{opt}_lr0.001_seed{seed}_step_{steps[-1]:06d}_eval.json")[:20]
            extra = extra_path(opt, seed)
            final = first + successes(extra) if extra.exists() else None
            fk = f"{sum(final)}/{len(final)}" if final else "-"
            print(f"| {NAMES[opt]} | {seed} | " + " | ".join(cells)
                  + f" | {fk} | {ci(sum(final), len(final)) if final else '-'} |")
            finals.append(dict(optimizer=opt, seed=seed, step=steps[-1], successes=sum(final) if final else "",
                               episodes=len(final) if final else "",
                               val_loss=float(by[(opt, seed, steps[-1])]["val_loss"])))
    print("\nPooled over seeds " + ", ".join(map(str, seeds)) + ":\n")
    print("| optimizer | " + " | ".join(f"step {s} ({20 * len(seeds)} ep.)" for s in steps)
          + " | final (50 ep. per seed) | mean val loss @ final |")
    print("|---|" + "---|" * len(steps) + "---|---|")
    pooled = {}
    for opt in OPTIMS:
        cells = []
        for step in steps:
            k = sum(round(float(by[(opt, s, step)]["success"]) * 20) for s in seeds)
            cells.append(f"{k}/{20 * len(seeds)} ({ci(k, 20 * len(seeds))})")
        mine = [f for f in finals if f["optimizer"] == opt and f["episodes"]]
        k, n = sum(f["successes"] for f in mine), sum(f["episodes"] for f in mine)
        pooled[opt] = (k, n)
        vl = sum(f["val_loss"] for f in finals if f["optimizer"] == opt) / len(seeds)
        print(f"| {NAMES[opt]} | " + " | ".join(cells) + f" | {k}/{n} ({ci(k, n)}) | {vl:.4f} |")
    (ka, na), (kd, nd) = pooled["adamw"], pooled["dopr-adamw"]
    if na and nd:
        pa, pd = ka / na, kd / nd
        lo, hi = newcombe_interval((pd, *wilson_interval(kd, nd)), (pa, *wilson_interval(ka, na)))
        print(f"\nPooled finals, DoPr-AdamW - AdamW: {100 * (pd - pa):+.1f} points, Newcombe 95% "
              f"[{100 * lo:+.1f}, {100 * hi:+.1f}] ({kd}/{nd} vs {ka}/{na})")
    with open(HERE / "gap_square_finals.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(finals[0]))
        w.writeheader()
        w.writerows(finals)
    return finals


def last_val_loss(result: Path) -> str:
    """Validation loss at the last logged step of the run whose evaluation is ``result`` (its metrics CSV
    sits beside it as ``<stem>_metrics.csv``)."""
    rows = [r for r in csv.DictReader(open(result.with_name(result.stem + "_metrics.csv"))) if r["val_loss"]]
    return f"{float(rows[-1]['val_loss']):.3f} @ {rows[-1]['step']}"


def unet_table() -> list[tuple[str, str, dict]]:
    mlp = {"lift": HERE.parent / "robomimic" / "policy_lift_flow_mlp.json",
           "can": HERE.parent / "robomimic-2" / "policy_can_flow_mlp.json",
           "square": HERE.parent / "robomimic-2" / "policy_square_flow_mlp.json"}
    bars = []
    print("\n| task | flow MLP (1500 x 256) | val loss | flow U-Net (steps x batch) | Wilson 95% (U-Net) "
          "| mean length (U-Net) | val loss |")
    print("|---|---|---|---|---|---|---|")
    for task in ("square", "lift", "can"):
        m = json.loads(mlp[task].read_text())
        bars.append((task, "MLP", m))
        for path in sorted(HERE.glob(f"policy_{task}_flow_unet*.json")):
            if path.stem.endswith(("_metrics", "_train_config")):
                continue
            u = json.loads(path.read_text())
            train = json.loads(path.with_name(path.stem + "_train_config.json").read_text())
            budget = f"{train['steps']} x {train['batch']}"
            bars.append((task, f"U-Net\n{budget}", u))
            k, n = sum(u["successes"]), u["n_episodes"]
            print(f"| {task} | {sum(m['successes'])}/{m['n_episodes']} | {last_val_loss(mlp[task])} | {k}/{n} ({budget}) "
                  f"| {ci(k, n)} | {u['mean_length']:.1f} | {last_val_loss(path)} |")
    return bars


def plot(finals: list[dict], bars: list[tuple[str, str, dict]]) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, opt in enumerate(OPTIMS):
        mine = [f for f in finals if f["optimizer"] == opt and f["episodes"]]
        for j, f in enumerate(mine):
            lo, hi = wilson_interval(f["successes"], f["episodes"])
            p = f["successes"] / f["episodes"]
            a.errorbar(i + 0.15 * (j - 1), p, yerr=[[p - lo], [hi - p]], fmt="o", color="tab:gray", capsize=3)
        k, n = sum(f["successes"] for f in mine), sum(f["episodes"] for f in mine)
        if n:
            lo, hi = wilson_interval(k, n)
            a.errorbar(i + 0.4, k / n, yerr=[[k / n - lo], [hi - k / n]], fmt="s", color="tab:blue", capsize=4)
            a.text(i + 0.4, hi + 0.02, f"{k}/{n}", ha="center", fontsize=8)
    a.set_xticks([0.1, 1.1], [NAMES[o] for o in OPTIMS])
    a.set_xlim(-0.5, 1.8)
    a.set_ylim(0, 0.6)
    a.set_ylabel("success at step 3000 (Wilson 95%)")
    a.set_title("Square gap study: seeds (grey), pooled (blue)", fontsize=9)
    for i, (task, kind, d) in enumerate(bars):
        rate = d["success_rate"]
        b.bar(i, rate, yerr=[[rate - d["ci_low"]], [d["ci_high"] - rate]], capsize=4,
              color="tab:blue" if kind == "MLP" else "tab:orange")
        b.text(i, d["ci_high"] + 0.02, f"{sum(d['successes'])}/{d['n_episodes']}", ha="center", fontsize=8)
    b.set_xticks(range(len(bars)), [f"{k}\n{t}" for t, k, _ in bars], fontsize=8)
    b.set_ylim(0, 1.12)
    b.set_title("flow policies from 50 demos, 50 episodes", fontsize=9)
    fig.tight_layout()
    fig.savefig(HERE / "robomimic3.png", dpi=120)


def main() -> None:
    copy_study()
    finals = gap_tables()
    bars = unet_table()
    plot(finals, bars)


if __name__ == "__main__":
    main()
