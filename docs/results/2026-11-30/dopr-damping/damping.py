"""DoPr's damping under the fair protocol (issue 18): a tuning run per damping at DoPr's tuned lr.

For each finished setting of ../dopr-study, DoPr-AdamW is retrained with the same tuning seed (1000), the same
demos and its picked lr, once per damping in DAMPINGS, and every checkpoint is scored on the same 20 tuning
episodes (env seeds 50000+) as the lr tuning (``ttfkit.scripts.gap_tune.tune_lrs``). The default damping (1e-2)
is the lr-tuning run itself. The pick follows gap_tune's rule (best checkpoint, then mean), a tie keeping the
default; evaluation seeds 100000+ are not touched here.

    MUJOCO_GL=egl python docs/results/2026-11-30/dopr-damping/damping.py SETTING [SETTING ...]

The setting's DoPr optimizer is read from its gap_config.json (dopr-adamw for the four settings of this folder;
../dopr-damping-2 ran the DART, U-Net and Muon settings with ``--out outputs/dopr-damping-2 --jsonl
docs/results/2026-11-30/dopr-damping-2/damping.jsonl``).
"""
import argparse
import json
from dataclasses import fields
from pathlib import Path

import torch

from ttfkit.scripts.gap import GapConfig
from ttfkit.scripts.gap_tune import pick_lr, tune_lrs

STUDY = Path("outputs/dopr-study")
OUT = Path("outputs/dopr-damping")
DAMPINGS = (1e-3, 1e-1)
DEFAULT = 1e-2


def _key(series):
    return max(s for _, s in series), sum(s for _, s in series) / len(series)


def main(settings: list[str], out: Path = OUT, jsonl: Path = Path(__file__).parent / "damping.jsonl") -> None:
    rows = []
    for name in settings:
        src = STUDY / name
        saved = json.loads((src / "gap_config.json").read_text())
        tuned = json.loads((src / "tune" / "tune.json").read_text())
        dopr = next(o for o in saved["optims"] if o.startswith("dopr-"))
        lr = tuned["picked"][dopr]
        by_damping = {DEFAULT: [tuple(x) for x in tuned["table"][dopr][f"{lr:g}"]]}
        known = {f.name for f in fields(GapConfig)}
        for damping in DAMPINGS:
            cfg = GapConfig(**{**{k: v for k, v in saved.items() if k in known}, "out": str(out / f"{name}-d{damping:g}"),
                               "dataset": str(src / "demos.zarr"), "optims": (dopr,), "lrs": (lr,),
                               "optim_lrs": {}, "optim_options": {"damping": damping}})
            tune_lrs(cfg, cfg.dataset)
            table = json.loads((Path(cfg.out) / "tune" / "tune.json").read_text())["table"][dopr]
            by_damping[damping] = [tuple(x) for x in table[f"{lr:g}"]]
        picked = pick_lr(by_damping)  # gap_tune's rule: best checkpoint, then mean, then the smaller value ...
        if _key(by_damping[DEFAULT]) == _key(by_damping[picked]):
            picked = DEFAULT  # ... except that a tie keeps the default (the reported runs already use it)
        row = {"setting": name, "optimizer": dopr, "lr": lr, "picked_damping": picked,
               "tuning_success": {f"{d:g}": [s for _, s in v] for d, v in sorted(by_damping.items())}}
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(1)  # as the study's `--threads 1`
    parser = argparse.ArgumentParser()
    parser.add_argument("settings", nargs="+")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--jsonl", type=Path, default=Path(__file__).parent / "damping.jsonl")
    args = parser.parse_args()
    main(args.settings, args.out, args.jsonl)
