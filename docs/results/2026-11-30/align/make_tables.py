"""Tables of this folder from the cached aligned evaluations under outputs/align (run from the repo root):
    python docs/results/2026-11-30/align/make_tables.py outputs/align docs/results/2026-11-30/align
Every cached CKPT/align/<method>-<reward>-x<N>.json (written by `ttf gap --align` / gap_align) becomes an
AlignRow; rows are grouped per setting and written with ttfkit's own aligned-report writer."""
import json
import sys
from pathlib import Path

from ttfkit.envs import EvalResult
from ttfkit.scripts.gap_align import AlignRow, write_align_report

root, out = Path(sys.argv[1]), Path(sys.argv[2])
for setting in sorted(p.name for p in root.iterdir() if (p / "runs").is_dir()):
    rows = []
    for ckpt in sorted((root / setting / "runs").glob("*/checkpoints/step_*")):
        run = ckpt.parent.parent.name  # adamw_lr0.001_seed0
        opt, lr, seed = run.split("_lr")[0], float(run.split("_lr")[1].split("_seed")[0]), int(run.split("_seed")[1])
        if not (ckpt / "eval.json").exists():
            continue
        base = EvalResult.from_json((ckpt / "eval.json").read_text())
        for f in sorted((ckpt / "align").glob("*.json")) + sorted((ckpt / "align_extra").glob("*.json")):
            method = next(m for m in ("best-of-n", "smc", "guidance") if f.stem.startswith(m + "-"))
            reward, n = f.stem[len(method) + 1:].rsplit("-x", 1)
            n = int(n)
            d = json.loads(f.read_text())
            ev, al = d["eval"], d["align"]
            k = ev["n_episodes"]
            b = base.head(k)
            rows.append(AlignRow(opt, seed, lr, int(ckpt.name.split("_")[1]), method, reward, n,
                                 int(sum(ev["successes"])), k, b.n_successes, b.n_episodes,
                                 al.get("nfe_per_chunk", 0.0), al.get("sim_steps_per_chunk", 0.0),
                                 al.get("wall_s_per_episode", al.get("wall_s", 0.0) / max(k, 1))))
    (out / setting).mkdir(parents=True, exist_ok=True)
    print(write_align_report(rows, out / setting, f"{setting}: aligned vs base (same evaluation seeds)"))
