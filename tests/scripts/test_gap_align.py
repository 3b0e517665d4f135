"""`ttf gap --align`: budgets spent at most at N times the base NFE, the alignment stage on a real
(tiny) run with a fitted critic, caching, and the aligned report's pooled numbers."""

import csv
import json

import pytest
import torch

import ttfkit.envs  # noqa: F401
from ttfkit.align.policy import AlignedPolicy
from ttfkit.align.rewards import make_reward
from ttfkit.envs.evaluate import evaluate
from ttfkit.policies import make_policy
from ttfkit.scripts.gap import GapConfig
from ttfkit.scripts.gap_align import AlignStage, method_config, run_align_stage

ENV = "ttfkit/metaworld-reach-v3"


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return make_policy("flow", obs_shapes={"agent_pos": (4,), "environment_state": (17,)}, action_dim=4,
                       horizon=8, n_obs_steps=2, n_action_steps=4, num_steps=10,
                       backbone_options={"hidden_dim": 32, "n_blocks": 1}).eval()


@pytest.mark.parametrize("n", [4, 8, 16])
def test_budgets_spend_at_most_n_times_the_base_nfe(policy, n):
    reward = make_reward("goal_distance", goal=[0.0, 0.6, 0.2])
    nfe = {}
    for method in ("best-of-n", "smc", "guidance") + (("weighted",) if n >= 5 else ()):
        aligned = AlignedPolicy(policy, reward, method_config(method, n, 10), generator=torch.Generator().manual_seed(0))
        evaluate(aligned, ENV, 1, seed=0, n_envs=1, max_steps=4)
        nfe[method] = aligned.summary()["nfe_per_chunk"]
    assert nfe["best-of-n"] == 10 * n
    assert nfe["smc"] == 9 * n  # N particles x 3 inner steps x (transition + value sample + last transition)
    assert nfe["guidance"] == 10 + 9 * 3 * ((n - 1) * 10 // 27)  # euler; no guidance term at t = 0
    if n >= 5:  # AlignStage refuses weighted below 5x: one candidate per guided step costs 4.6x
        assert nfe["weighted"] == 10 + 9 * 4 * ((n - 1) * 10 // 36)  # M x (2-step flow map + 2 scores)
    assert max(nfe.values()) <= 10 * n


def test_align_stage_fits_critics_caches_and_reports(tmp_path, policy):
    run = tmp_path / "runs" / "adamw_lr0.001_seed0"
    ckpt = run / "checkpoints" / "step_000010"
    policy.save(ckpt)
    (ckpt / "eval.json").write_text(evaluate(policy, ENV, 2, n_envs=1, max_steps=8).to_json())
    cfg = GapConfig(env=ENV, out=str(tmp_path), optims=("adamw",), eval_episodes=2, eval_max_steps=8,
                    steps=10, ckpt_every=10, align=("best-of-n", "smc"), reward="critic", particles=(2,),
                    critic_episodes=3)
    stage = cfg.align_stage()
    rows = run_align_stage(cfg, stage, [("adamw", 1e-3, 0, run)], {run: ckpt})
    assert [(r.method, r.particles, r.episodes) for r in rows] == [("best-of-n", 2, 2), ("smc", 2, 2)]
    assert (ckpt / "critic" / "model.safetensors").exists()
    assert rows[0].nfe_per_chunk == 2 * 10 and rows[1].nfe_per_chunk == 2 * 3 * 3
    cached = ckpt / "align" / "best-of-n-critic-x2.json"
    before = cached.stat().st_mtime_ns
    again = run_align_stage(cfg, stage, [("adamw", 1e-3, 0, run)], {run: ckpt})
    assert cached.stat().st_mtime_ns == before and again == rows  # nothing re-evaluated
    from ttfkit.scripts.gap_align import write_align_report

    text = write_align_report(rows, tmp_path, "t")
    with open(tmp_path / "aligned.csv") as f:
        table = list(csv.DictReader(f))
    saved = json.loads(cached.read_text())["eval"]
    assert int(table[0]["successes"]) == sum(saved["successes"]) and "best-of-n | critic | 2x" in text
    assert (tmp_path / "aligned.png").stat().st_size > 0
    from ttfkit.scripts.gap_report import _aligned_points

    assert _aligned_points(rows) == {(10, "best-of-n", "critic", 2): [rows[0].successes / 2],
                                     (10, "smc", "critic", 2): [rows[1].successes / 2]}


def test_bad_alignment_options_are_refused():
    with pytest.raises(ValueError, match="methods"):
        AlignStage(methods=("beam",), reward="critic")
    with pytest.raises(ValueError, match="at least 4x"):
        AlignStage(methods=("guidance",), reward="critic", particles=(2,))
    with pytest.raises(ValueError, match="at least 5x"):
        AlignStage(methods=("weighted",), reward="critic", particles=(4,))
    with pytest.raises(ValueError, match="needs a reward"):
        GapConfig(env=ENV, out="x", align=("smc",))


def test_a_critic_fitted_on_other_episodes_is_not_reused_silently(tmp_path, policy):
    from ttfkit.align.critic import ChunkCritic, save_critic
    from ttfkit.scripts.gap_align import _critic

    ckpt = tmp_path / "step_000010"
    critic = ChunkCritic(policy.encoder.out_dim, 8, 4, hidden=8)
    critic.meta["episodes"] = 50
    save_critic(critic, ckpt / "critic")
    stage = AlignStage(methods=("best-of-n",), reward="critic", critic_episodes=40)
    with pytest.raises(ValueError, match=r"fitted on 50 episodes \+ 0 refit episodes, this study asks for 40 \+ 0"):
        _critic(ENV, ckpt, stage, None)
    assert _critic(ENV, ckpt, AlignStage(methods=("best-of-n",), reward="critic", critic_episodes=50), None) == str(
        ckpt / "critic")


def test_align_stage_refits_the_critic_once_and_checks_the_refit(tmp_path, policy):
    """critic_refit_episodes runs `ttf critic --refit-episodes`: the saved critic has the base and the
    aligned episodes, and a stage asking for another refit size does not reuse it."""
    from ttfkit.align.critic import load_critic
    from ttfkit.scripts.gap_align import _critic

    ckpt = tmp_path / "step_000010"
    policy.save(ckpt)
    stage = AlignStage(methods=("best-of-n",), reward="critic", critic_episodes=3, critic_refit_episodes=2)
    out = _critic(ENV, ckpt, stage, 8)
    report = json.loads((ckpt / "critic" / "report.json").read_text())
    assert load_critic(out).meta["episodes"] == 5 and report["refit"]["episodes"] == 2
    assert report["refit"]["first_seed"] == 300003  # the refit's seeds follow the base rollouts'
    assert _critic(ENV, ckpt, stage, 8) == out  # reused
    with pytest.raises(ValueError, match=r"3 episodes \+ 2 refit episodes, this study asks for 3 \+ 0"):
        _critic(ENV, ckpt, AlignStage(methods=("best-of-n",), reward="critic", critic_episodes=3), 8)


def test_gap_flag_reaches_the_align_stage():
    from ttfkit.scripts import cli, gap

    args = cli.parse(["gap", "--env", ENV, "--align", "best-of-n", "--reward", "critic", "--critic-refit-episodes", "5",
                      "--out", "o"])[2]
    (cfg,) = gap._configs(args)
    assert cfg.align_stage().critic_refit_episodes == 5
    with pytest.raises(ValueError, match="bad alignment options"):
        AlignStage(methods=("best-of-n",), reward="critic", critic_refit_episodes=-1)
