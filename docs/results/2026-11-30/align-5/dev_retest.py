"""Dev (issue 12): how repeatable is the rollout reward's verdict on one candidate? Best-of-4 with the rollout
reward (as align-2's dev_rank.py collect), but every candidate set is scored twice, with independent
continuation noise (the second call draws new seeds); the first score selects, both are recorded.
If a candidate's look-ahead success is mostly continuation luck, a within-state ranking learnt from such labels
(or from episode outcomes) has little to find.

    MUJOCO_GL=egl python docs/results/2026-11-30/align-5/dev_retest.py CKPT ENV OUT EPISODES SEED
    python docs/results/2026-11-30/align-5/dev_retest.py summarize OUT [OUT ...]
"""
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import ttfkit.envs  # noqa: F401  (registers the env ids)
from ttfkit.align.policy import AlignConfig, AlignedPolicy
from ttfkit.align.rollout import RolloutTracker, RolloutValueReward
from ttfkit.envs import evaluate
from ttfkit.policies import load


def main(ckpt, env, out, episodes, seed):
    torch.set_num_threads(1)
    policy = load(ckpt)
    rollout = RolloutValueReward(policy, env, horizon=120, flow_steps=2)
    rows = []

    class Retest(RolloutTracker):
        def __call__(self, x, ctx):
            v = self.rollout(x, ctx)
            rows.append((v.clone(), self.rollout(x, ctx).clone()))
            return v

    aligned = AlignedPolicy(policy, Retest(rollout), AlignConfig(method="best-of-n", particles=4), seed_base=7)
    start = time.time()
    res = evaluate(aligned, env, episodes, seed=seed, n_envs=1, workers=0,
                   on_episode=lambda n, ok: print("episode", n, ok, round(time.time() - start), "s", flush=True))
    rollout.close()
    first, second = torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
    save_file({"first": first.float(), "second": second.float()}, out)
    print("aligned success", sum(res.successes), "/", episodes, "states", len(rows), flush=True)
    summarize(first, second)


def summarize(first, second):
    a, b = (first > 0.5).float(), (second > 0.5).float()  # success (the bonus is 1, the return term < 0.1)
    print(f"candidates: P(success) test {a.mean():.3f} retest {b.mean():.3f}; "
          f"P(retest ok | test ok) {b[a == 1].mean():.3f}, P(retest ok | test fail) {b[a == 0].mean():.3f}")
    mixed = (a.min(1).values == 0) & (a.max(1).values == 1)
    am, bm = a[mixed], b[mixed]
    print(f"mixed states (test): {int(mixed.sum())} of {len(a)}; within them P(retest ok | test ok) "
          f"{bm[am == 1].mean():.3f}, P(retest ok | test fail) {bm[am == 0].mean():.3f}")
    pick = first.argmax(1)
    edge = b[torch.arange(len(b)), pick] - b.mean(1)  # per state: the pick's retest success minus the set's mean
    half = 1.96 * float(edge.std()) / len(edge) ** 0.5
    print(f"the test's pick succeeds on retest {b[torch.arange(len(b)), pick].mean():.3f}; "
          f"a random candidate {b.mean():.3f}; edge per decision {edge.mean():+.4f} +- {half:.4f} (95%)")
    r = np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1]
    print(f"test-retest correlation of candidate success {r:.3f}")
    # Within-state spread of the candidates' true success probabilities q_i: test and retest are independent
    # given q, so the within-state covariance of their deviations estimates the within-state variance of q.
    n = a.shape[1]
    cov = ((a - a.mean(1, keepdim=True)) * (b - b.mean(1, keepdim=True))).sum(1) / (n - 1)
    print(f"within-state variance of q: {cov.mean():.4f} (sd {max(float(cov.mean()), 0) ** 0.5:.3f}); "
          f"a perfect ranker's pick gains about 1.03 sd over a random candidate per decision (normal q, n = 4)")


def summarize_files(paths):
    data = [load_file(p) for p in paths]
    summarize(torch.cat([d["first"] for d in data]), torch.cat([d["second"] for d in data]))


if __name__ == "__main__":
    if sys.argv[1] == "summarize":  # dev_retest.py summarize FILE [FILE ...]
        summarize_files(sys.argv[2:])
    else:
        main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
