"""Simulator look-ahead on real Meta-World (bit-exact snapshots, shadows in lockstep with the
evaluator), the aligned-policy wrapper, the chunk critic and `ttf align` end to end."""

import json

import numpy as np
import pytest
import torch

import ttfkit.envs  # noqa: F401
from ttfkit.align.critic import ChunkCritic, CriticReward, collect_critic_data, fit_critic, load_critic, save_critic
from ttfkit.align.policy import AlignConfig, AlignedPolicy
from ttfkit.align.rewards import make_reward
from ttfkit.align.sim import ShadowEnvs, restore, snapshot
from ttfkit.envs import make_env
from ttfkit.envs.evaluate import evaluate

ENV = "ttfkit/metaworld-pick-place-v3"


def test_snapshot_restore_replays_bit_exactly_and_sim_reward_matches_an_independent_replay():
    rng = np.random.default_rng(0)
    prefix, chunk = rng.uniform(-1, 1, (6, 4)).astype(np.float32), rng.uniform(-1, 1, (2, 8, 4)).astype(np.float32)
    env = make_env(ENV)
    env.reset(seed=5)
    for a in prefix:
        env.step(a)
    snap = snapshot(env)
    first = [env.unwrapped.step(a) for a in chunk[0]]
    restore(env, snap)
    again = [env.unwrapped.step(a) for a in chunk[0]]
    for (o1, r1, *_), (o2, r2, *_) in zip(first, again):
        assert r1 == r2 and all(np.array_equal(o1[k], o2[k]) for k in o1)
    restore(env, snap)
    reward = make_reward("sim", start=1, steps=5, success_bonus=10.0)
    vals = reward(torch.as_tensor(chunk), {"sim_env": env})
    # independent reference: a fresh env with the same seed replays the prefix, then the chunk part
    for i in range(2):
        ref = make_env(ENV)
        ref.reset(seed=5)
        for a in prefix:
            ref.step(a)
        total = sum(ref.step(a)[1] for a in chunk[i, 1:6])
        assert float(vals[i]) == pytest.approx(total, rel=1e-5)
    # the look-ahead left the env where it was
    o_env = env.unwrapped.step(chunk[0, 0])[0]
    restore(env, snap)
    assert np.array_equal(o_env["agent_pos"], first[0][0]["agent_pos"])
    with pytest.raises(KeyError, match="sim_env"):
        reward(torch.as_tensor(chunk), {})


def test_shadow_envs_track_the_evaluator_and_best_of_n_raises_lookahead_reward(tiny_policy):
    stats, rewards = {}, {}
    for method in ("none", "best-of-n"):
        shadow = ShadowEnvs(ENV, n_envs=1)
        reward = make_reward("sim", start=1, steps=4)
        aligned = AlignedPolicy(tiny_policy, reward, AlignConfig(method=method, particles=6), shadow=shadow,
                                generator=torch.Generator().manual_seed(0))
        # score every executed chunk with the same look-ahead reward, whichever method chose it
        scored = []
        plan = aligned.plan_chunks

        def spy(obs_batch, slots, plan=plan, shadow=shadow, reward=reward, scored=scored):
            chunk = plan(obs_batch, slots)
            scored.append(float(reward(chunk, {"sim_env": shadow.envs[slots[0]]})[0]))
            return chunk

        aligned.plan_chunks = spy
        evaluate(aligned, ENV, 2, seed=200, n_envs=1, max_steps=16)
        assert shadow.mismatches == 0
        stats[method], rewards[method] = aligned.summary(), np.mean(scored)
        shadow.close()
    assert stats["none"]["nfe_per_chunk"] == 4 and stats["best-of-n"]["nfe_per_chunk"] == 24
    assert rewards["best-of-n"] > rewards["none"]
    # a shadow that no longer follows the evaluator is detected
    shadow = ShadowEnvs(ENV, n_envs=1)
    shadow.reset_slot(0, seed=999)
    obs, _ = make_env(ENV).reset(seed=200)
    shadow.check({k: v[None] for k, v in obs.items()})
    assert shadow.mismatches == 1
    shadow.close()


def test_aligned_policy_validates():
    with pytest.raises(ValueError, match="method"):
        AlignConfig(method="beam")
    with pytest.raises(ValueError, match="smc_final"):
        AlignConfig(method="smc", smc_final="best")
    with pytest.raises(ValueError, match="differentiable"):
        AlignedPolicy(object(), make_reward("sim"), AlignConfig(method="guidance"))


def test_critic_fit_reward_and_round_trip(tmp_path, tiny_policy):
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(512, 6, generator=g)
    chunk = torch.randn(512, 8, 4, generator=g)
    label = (chunk[:, :, 0].mean(1) > 0).float()  # success iff the mean x-command is positive
    critic = fit_critic({"cond": cond, "chunk": chunk, "success": label}, horizon=8, action_dim=4, steps=300,
                        hidden=64, generator=g)
    with torch.no_grad():
        acc = ((critic(cond, chunk) > 0).float() == label).float().mean()
    assert acc > 0.9
    save_critic(critic, tmp_path / "critic")
    loaded = load_critic(tmp_path / "critic")
    torch.testing.assert_close(loaded(cond[:5], chunk[:5]), critic(cond[:5], chunk[:5]))
    # reward = log P(success): non-positive, and larger for the chunk the critic prefers
    pc = tiny_policy.encoder.out_dim
    r = CriticReward(ChunkCritic(pc, 8, 4, hidden=16), tiny_policy)
    vals = r(torch.randn(3, 8, 4), {"cond": torch.randn(1, pc)})
    assert vals.shape == (3,) and (vals <= 0).all()


def test_collect_critic_data_labels_every_planned_chunk(tiny_policy):
    data = collect_critic_data(tiny_policy, ENV, 1, seed=300, n_envs=1, max_steps=8)
    assert data["chunk"].shape == (2, 8, 4)  # 8 steps / 4 executed per chunk
    assert data["cond"].shape == (2, tiny_policy.encoder.out_dim)
    assert data["success"].tolist() == [0.0, 0.0]
    assert "plan_chunks" not in vars(tiny_policy)  # routing undone


def test_ttf_align_cli(tmp_path, tiny_policy, capsys):
    from ttfkit.scripts.cli import main

    tiny_policy.save(tmp_path / "ckpt")
    out = tmp_path / "res.json"
    rc = main(["align", "--policy", str(tmp_path / "ckpt"), "--env", ENV, "--method", "smc", "--reward", "sim",
               "--particles", "3", "--smc-steps", "3", "--value-samples", "2", "--inner-steps", "2",
               "--episodes", "1", "--max-steps", "8", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "NFE per chunk" in text and "shadow-env mismatches 0" in text
    res = json.loads(out.read_text())
    # SMC with GLASS: N·inner per transition (3 of them) + N·M·inner per value estimate (2 of them)
    assert res["align"]["nfe_per_chunk"] == 3 * 2 * 3 + 3 * 2 * 2 * 2
    assert res["eval"]["n_episodes"] == 1
    assert main(["align", "--policy", str(tmp_path / "ckpt"), "--env", ENV, "--method", "smc",
                 "--reward", "critic"]) == 2


def test_aligned_episodes_do_not_depend_on_how_many_envs_plan_at_once(tiny_policy):
    """Per-episode noise and block-wise observation encoding: best-of-N with a (random) critic gives the same
    episodes with 1, 2 or 3 envs; a critic fed per-batch features would drift in the last bits and pick
    other candidates."""
    torch.manual_seed(1)
    critic = ChunkCritic(tiny_policy.encoder.out_dim, 8, 4, hidden=16, members=2)
    reward = CriticReward(critic, tiny_policy)
    results = []
    for n in (1, 2, 3):
        aligned = AlignedPolicy(tiny_policy, reward, AlignConfig(method="best-of-n", particles=4), seed_base=3)
        results.append(evaluate(aligned, "ttfkit/metaworld-reach-v3", 4, seed=11, n_envs=n, workers=0, max_steps=20))
    for r in results[1:]:
        assert r.returns == results[0].returns and r.lengths == results[0].lengths
    assert len(set(results[0].returns)) == 4


def test_ttf_align_cli_weighted(tmp_path, tiny_policy):
    from ttfkit.scripts.cli import main

    tiny_policy.save(tmp_path / "ckpt")
    out = tmp_path / "res.json"
    rc = main(["align", "--checkpoint", str(tmp_path / "ckpt"), "--env", "ttfkit/metaworld-reach-v3", "--method",
               "weighted", "--reward", "goal_distance", "--reward-option", "goal=[0.0, 0.6, 0.2]", "--particles", "2",
               "--steps", "3", "--flow-map-steps", "3", "--snr-factor", "2", "--episodes", "1", "--max-steps", "8",
               "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["align"]["nfe_per_chunk"] == 3 + 2 * 2 * (3 + 2)  # 2 guided steps x M x (map + 2 scores)
    assert res["align"]["config"]["flow_map_steps"] == 3 and res["align"]["config"]["snr_factor"] == 2.0
    assert main(["align", "--checkpoint", str(tmp_path / "ckpt"), "--env", ENV, "--method", "weighted",
                 "--reward", "sim"]) == 2  # the simulator reward has no gradient
