"""align-2's driver (``../align-2/driver.py``: jobs claimed through lock folders) with align-3's job lists.

    python docs/results/2026-11-30/align-3/driver.py P    # rollout reference, peg-insert-side seeds 1 and 2
    python docs/results/2026-11-30/align-3/driver.py G    # first-fit critic grid, then SMC with the rollout reward

G ran only its first cell (stick-pull seed 1, best-of-4) before `jobs.py` took over the list.
"""
import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("align2_driver", Path(__file__).parents[1] / "align-2" / "driver.py")
driver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(driver)


def jobs(tag):
    """P = rollout-reward reference on peg-insert-side seeds 1 and 2 (left open in align-2);
    G = the critic grid the first pass ran on seed 0 only (best-of-4/16, guidance 8x) on every seed and
    setting, then SMC vs best-of-N with the rollout reward at equal NFE (stick-pull seed 0)."""
    if tag == "P":
        return [("peg5", seed, "rollout", "best-of-n", 4) for seed in (1, 2)]
    grid = [(s, seed, "critic", m, n) for seed in (1, 2, 0) for s in ("stick10", "shelf10", "peg5")
            for m, n in (("best-of-n", 4), ("best-of-n", 16), ("guidance", 8))]
    return grid + [("stick10", 0, "rollout", "smc", 4)]


if __name__ == "__main__":
    driver.jobs = jobs  # align-2's main() looks its job list up by this name
    driver.main(sys.argv[1])
