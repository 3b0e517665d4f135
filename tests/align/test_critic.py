"""Chunk critic: labels, episode split, ensemble fit, held-out quality against an independent AUC,
policy/env mismatch errors, and `ttf critic` end to end on real Meta-World."""

import json

import numpy as np
import pytest
import torch

from ttfkit.align.critic import (ChunkCritic, CriticReward, critic_quality, episode_split, fit_critic, labels,
                                 load_critic, policy_fingerprint, save_critic)

ENV = "ttfkit/metaworld-reach-v3"


def _synthetic(n_episodes=60, per_episode=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = n_episodes * per_episode
    chunk = torch.randn(n, 8, 4, generator=g)
    episode = torch.arange(n_episodes).repeat_interleave(per_episode) + 1000
    success = (chunk[:, :, 0].mean(1) > 0).float()  # the chunk decides
    return {"cond": torch.randn(n, 6, generator=g), "chunk": chunk, "episode": episode,
            "step": torch.arange(per_episode).repeat(n_episodes) * 4, "success": success,
            "length": torch.full((n,), 4 * per_episode)}


def test_discounted_labels_and_episode_split():
    data = {"success": torch.tensor([1.0, 1.0, 0.0]), "step": torch.tensor([0, 30, 10]),
            "length": torch.tensor([40, 40, 500])}
    torch.testing.assert_close(labels(data, "discounted", gamma=0.9), torch.tensor([0.9**40, 0.9**10, 0.0]))
    torch.testing.assert_close(labels(data, "success"), data["success"])
    with pytest.raises(ValueError, match="label"):
        labels(data, "td")
    episodes = torch.arange(20).repeat_interleave(3)
    train, held = episode_split(episodes, 0.25, generator=torch.Generator().manual_seed(0))
    assert (train ^ held).all() and len(torch.unique(episodes[held])) == 5
    assert not set(episodes[train].tolist()) & set(episodes[held].tolist())


def test_ensemble_fit_generalises_and_quality_matches_an_independent_auc():
    data = _synthetic()
    train, held = episode_split(data["episode"], 0.25, generator=torch.Generator().manual_seed(0))
    critic = fit_critic({k: v[train] for k, v in data.items()}, horizon=8, action_dim=4, steps=300, hidden=64,
                        members=3, generator=torch.Generator().manual_seed(0))
    assert len(critic.members) == 3
    heldout = {k: v[held] for k, v in data.items()}
    q = critic_quality(critic, heldout)
    with torch.no_grad():
        p = torch.sigmoid(critic(heldout["cond"], heldout["chunk"])).numpy()
    y = heldout["success"].numpy().astype(bool)
    pos, neg = p[y][:, None], p[~y][None, :]
    auc_ref = ((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size)  # pairwise definition
    assert q["auc"] == pytest.approx(auc_ref, abs=1e-9) and q["auc"] > 0.9
    assert q["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert sum(c["n"] for c in q["calibration"]) == len(y)


def test_critic_refuses_another_policy_or_env(tmp_path, tiny_policy):
    other = type(tiny_policy)(tiny_policy.config)  # same shapes, other weights
    critic = ChunkCritic(tiny_policy.encoder.out_dim, 8, 4, hidden=8)
    critic.meta.update(policy_fingerprint=policy_fingerprint(tiny_policy), policy="runs/a", env_id=ENV)
    save_critic(critic, tmp_path / "c")
    CriticReward(tmp_path / "c", tiny_policy, env_id=ENV)  # matches
    assert policy_fingerprint(other) != policy_fingerprint(tiny_policy)
    with pytest.raises(ValueError, match=r"fitted for policy .* \(runs/a\), not for this policy"):
        CriticReward(tmp_path / "c", other)
    with pytest.raises(ValueError, match="fitted on env 'ttfkit/metaworld-reach-v3', not 'ttfkit/x-v3'"):
        CriticReward(tmp_path / "c", tiny_policy, env_id="ttfkit/x-v3")
    with pytest.raises(ValueError, match="sizes"):
        CriticReward(ChunkCritic(3, 8, 4), tiny_policy)


def test_critic_images_compare_with_the_env_defaults_filled_in(tiny_policy):
    """A critic fitted with the env's default camera named explicitly serves an env built without --camera (and
    the reverse); another camera or image size is refused, naming both."""
    critic = ChunkCritic(tiny_policy.encoder.out_dim, 8, 4, hidden=8)
    critic.meta.update(env_id=ENV, env_kwargs={"pixels": True, "image_size": 84, "camera": "corner"})
    CriticReward(critic, tiny_policy, env_id=ENV, env_kwargs={"pixels": True, "image_size": 84})
    critic.meta["env_kwargs"] = {"pixels": True, "image_size": 84}
    CriticReward(critic, tiny_policy, env_id=ENV, env_kwargs={"pixels": True, "image_size": 84, "camera": "corner"})
    with pytest.raises(ValueError, match=r"'camera': 'corner'.*not on .*'camera': 'corner2'"):
        CriticReward(critic, tiny_policy, env_id=ENV, env_kwargs={"pixels": True, "image_size": 84, "camera": "corner2"})
    with pytest.raises(ValueError, match=r"'image_size': 84.*not on .*'image_size': 96"):
        CriticReward(critic, tiny_policy, env_id=ENV, env_kwargs={"pixels": True})  # the env's default side is 96


def test_ttf_critic_cli_end_to_end_and_data_reuse(tmp_path, tiny_policy):
    from ttfkit.scripts.cli import main

    tiny_policy.save(tmp_path / "ckpt")
    common = ["critic", "--checkpoint", str(tmp_path / "ckpt"), "--env", ENV, "--members", "2", "--steps", "20",
              "--hidden", "16", "--heldout", "0.5"]
    assert main([*common, "--episodes", "4", "--max-steps", "12", "--out", str(tmp_path / "c1")]) == 0
    report = json.loads((tmp_path / "c1" / "report.json").read_text())
    assert report["heldout"]["n_episodes"] == 2 and (tmp_path / "c1" / "calibration.png").stat().st_size > 0
    c1 = load_critic(tmp_path / "c1")
    assert c1.meta["policy_fingerprint"] == policy_fingerprint(tiny_policy) and c1.meta["episodes"] == 4
    # 4 episodes x 12 steps, a chunk planned every 4 steps
    data = __import__("safetensors.torch", fromlist=["load_file"]).load_file(str(tmp_path / "c1" / "rollouts.safetensors"))
    assert data["chunk"].shape == (12, 8, 4) and sorted(set(data["episode"].tolist())) == [300000, 300001, 300002, 300003]
    assert data["step"].tolist()[:3] == [0, 4, 8]
    assert main([*common, "--data", str(tmp_path / "c1" / "rollouts.safetensors"), "--out", str(tmp_path / "c2")]) == 0
    c2 = load_critic(tmp_path / "c2")
    for a, b in zip(c1.state_dict().values(), c2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_lookahead_labels_give_several_labelled_chunks_per_state(tiny_policy):
    from ttfkit.align.critic import collect_lookahead_data

    data = collect_lookahead_data(tiny_policy, ENV, 2, seed=320_000, candidates=3, horizon=4, every=1, max_steps=12)
    # 12 steps, a chunk planned every 4 steps, 3 candidates each, 2 episodes
    assert data["chunk"].shape == (2 * 3 * 3, 8, 4) and set(data["success"].tolist()) <= {0.0, 1.0}
    assert data["step"].tolist()[:6] == [0, 0, 0, 4, 4, 4]
    # each look-ahead: 4 executed + 4 continuation steps, capped by the 12-step limit at the last chunk
    assert int(data["sim_steps"]) == 2 * 3 * (8 + 8 + 4)
    # candidates at one state differ (they are samples), their state features are the same
    assert not torch.equal(data["chunk"][0], data["chunk"][1]) and torch.equal(data["cond"][0], data["cond"][1])
