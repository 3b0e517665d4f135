"""Alignment experiments (align-3; align-2's driver with a new job list): jobs claimed through lock folders so several drivers can share the list."""
import os, sys, time, json
from pathlib import Path
import torch
torch.set_num_threads(1)
os.environ.setdefault("MUJOCO_GL", "egl")
import ttfkit.envs  # noqa
from ttfkit.scripts.gap_align import AlignStage, align_checkpoint, _critic

ROOT = Path("outputs/align")
ENVS = {"shelf10": "ttfkit/metaworld-shelf-place-v3", "stick10": "ttfkit/metaworld-stick-pull-v3",
        "peg5": "ttfkit/metaworld-peg-insert-side-v3"}

def _first_pass_jobs():  # the first pass's list (../align), kept for the record
    # (priority, setting, seed, kind, method, budget)
    out = [(s, 0, "rollout", "best-of-n", 4) for s in ("stick10", "shelf10", "peg5")]
    for seed in range(3):
        for s in ("stick10", "shelf10", "peg5"):
            out.append((s, seed, "critic", "best-of-n", 8))
            out.append((s, seed, "critic", "smc", 8))
    for s in ("stick10", "shelf10", "peg5"):
        out.append((s, 0, "rollout", "best-of-n", 4))
    for s in ("stick10", "shelf10"):
        out.append((s, 0, "critic", "best-of-n", 4))
        out.append((s, 0, "critic", "best-of-n", 16))
        out.append((s, 0, "critic", "guidance", 8))
    return out

def main(tag):
    while True:
        did = False
        for s, seed, reward, method, n in jobs(tag):
            ckpt = ROOT / s / "runs" / f"adamw_lr0.001_seed{seed}" / "checkpoints" / "step_001500"
            if not (ckpt / "eval.json").exists():
                continue
            res = ckpt / "align" / f"{method}-{reward}-x{n}.json"
            lock = ROOT / "locks" / f"{s}-{seed}-{method}-{reward}-{n}"
            if res.exists():
                continue
            lock.parent.mkdir(exist_ok=True)
            try:
                lock.mkdir()
            except FileExistsError:
                continue
            stage = AlignStage(methods=(method,), reward=reward, particles=(n,), critic_episodes=100)
            t = time.time()
            if reward == "critic":
                clock = ROOT / "locks" / f"critic-{s}-{seed}"
                while True:
                    try:
                        clock.mkdir(); break
                    except FileExistsError:
                        if (ckpt / "critic" / "model.safetensors").exists(): break
                        time.sleep(10)
                _critic(ENVS[s], ckpt, stage, None)
            r = align_checkpoint(ENVS[s], ckpt, stage, method, n, 50, max_steps=None, device="cpu",
                                 desc=f"{tag} {s} s{seed} {method} {reward} x{n}")
            ev = r["eval"]
            print(f"{tag} {s} seed{seed} {method} {reward} x{n}: {sum(ev['successes'])}/{ev['n_episodes']} "
                  f"nfe {r['align'].get('nfe_per_chunk')} wall {time.time()-t:.0f}s", flush=True)
            did = True
            break
        if not did:
            time.sleep(30)


def jobs_align2(tag):
    """R: rollout-reward reference on training seeds 1 (seed 0 ran in the first pass); S: seed 2, then SMC."""
    if tag == "R":
        return [(s, 1, "rollout", "best-of-n", 4) for s in ("stick10", "shelf10")]
    return [(s, 2, "rollout", "best-of-n", 4) for s in ("stick10", "shelf10")] + \
           [("stick10", 0, "rollout", "smc", 4)] + \
           [("peg5", seed, "rollout", "best-of-n", 4) for seed in (1, 2)]

def jobs(tag):
    """align-3: P = rollout-reward reference on peg-insert-side seeds 1 and 2 (left open in align-2);
    G = the critic grid the first pass ran on seed 0 only (best-of-4/16, guidance 8x) on every seed and
    setting, then SMC vs best-of-N with the rollout reward at equal NFE (stick-pull seed 0)."""
    if tag == "P":
        return [("peg5", seed, "rollout", "best-of-n", 4) for seed in (1, 2)]
    grid = [(s, seed, "critic", m, n) for seed in (1, 2, 0) for s in ("stick10", "shelf10", "peg5")
            for m, n in (("best-of-n", 4), ("best-of-n", 16), ("guidance", 8))]
    return grid + [("stick10", 0, "rollout", "smc", 4)]


if __name__ == "__main__":
    main(sys.argv[1])
