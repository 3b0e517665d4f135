"""DoPr study (issue 18): extend a setting's lr grid past the edge where its tuning picked the largest lr.

For a finished setting of ../dopr-study, every optimizer in OPTIMS is trained once more at each lr in EXTRA, with
the same tuning seed (1000), demos and config, and its checkpoints are scored on the same 20 tuning episodes (env
seeds 50000+) as the original grid (``ttfkit.scripts.gap_tune.tune_lrs``). The pick over the extended grid follows
gap_tune's rule (best checkpoint, then mean, then the smaller lr). Evaluation seeds 100000+ are not touched.

    MUJOCO_GL=egl python docs/results/2026-11-30/dopr-lr-edge/edge.py SETTING LR[,LR] OPT[,OPT]
"""
import json
import sys
from dataclasses import fields
from pathlib import Path

import torch

from ttfkit.scripts.gap import GapConfig
from ttfkit.scripts.gap_tune import pick_lr, tune_lrs

STUDY = Path("outputs/dopr-study")
OUT = Path("outputs/dopr-lr-edge")


def main(name: str, extra: list[float], optims: list[str]) -> None:
    src = STUDY / name
    saved = json.loads((src / "gap_config.json").read_text())
    tuned = json.loads((src / "tune" / "tune.json").read_text())
    known = {f.name for f in fields(GapConfig)}
    for opt in optims:
        cfg = GapConfig(**{**{k: v for k, v in saved.items() if k in known}, "out": str(OUT / f"{name}-{opt}"),
                           "dataset": str(src / "demos.zarr"), "optims": (opt,), "lrs": tuple(extra),
                           "optim_lrs": {}})
        tune_lrs(cfg, cfg.dataset)
        new = json.loads((Path(cfg.out) / "tune" / "tune.json").read_text())["table"][opt]
        by_lr = {float(lr): [tuple(x) for x in series] for lr, series in tuned["table"][opt].items()}
        by_lr.update({float(lr): [tuple(x) for x in series] for lr, series in new.items()})
        row = {"setting": name, "optimizer": opt, "picked_before": tuned["picked"][opt], "picked": pick_lr(by_lr),
               "tuning_success": {f"{lr:g}": [s for _, s in v] for lr, v in sorted(by_lr.items())}}
        print(json.dumps(row), flush=True)
        with open(Path(__file__).parent / "edge.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(1)  # as the study's `--threads 1`
    main(sys.argv[1], [float(x) for x in sys.argv[2].split(",")], sys.argv[3].split(","))
