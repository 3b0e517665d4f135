"""Checkpoint directories: exact round trips, EMA weights, trainer state, atomic writes, no pickle."""

import json

import pytest
import torch

from ttfkit.data import Normalizer
from ttfkit.optim import make_optimizer
from ttfkit.policies import load, make_policy
from ttfkit.policies.checkpoint import read_trainer_state, save
from ttfkit.policies.ema import EMA

OBS = {"agent_pos": (3,), "environment_state": (4,)}


def _normalizer():
    dims = {"agent_pos": 3, "environment_state": 4, "action": 2}
    return Normalizer.from_dict({k: {"mode": "minmax", "min": [-1.0 - i for i in range(d)], "max": [2.0] * d,
                                     "mean": [0.0] * d, "std": [1.0] * d} for k, d in dims.items()})


def _policy(name="flow", **kw):
    torch.manual_seed(0)
    return make_policy(name, normalizer=_normalizer(), obs_shapes=OBS, action_dim=2, horizon=8, n_action_steps=4,
                       backbone_options={"hidden_dim": 32, "n_blocks": 1},
                       encoder={"lowdim_hidden": 16, "lowdim_features": 8}, **kw)


def _obs(b=3):
    g = torch.Generator().manual_seed(4)
    return {k: torch.randn(b, 2, *s, generator=g) for k, s in OBS.items()}


@pytest.mark.parametrize("name,kw", [("flow", {"num_steps": 3, "sampler": "midpoint"}),
                                     ("diffusion", {"sampler": "ddpm", "num_inference_steps": 7})])
def test_round_trip_gives_identical_actions_and_config(tmp_path, name, kw):
    policy = _policy(name, **kw)
    policy.save(tmp_path / "ckpt", metadata={"note": "x"})
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == [".ttfkit.json", "config.json", "model.safetensors", "normalizer.safetensors"]  # no pickle
    loaded = load(tmp_path / "ckpt")
    assert loaded.config == policy.config and type(loaded) is type(policy)
    noise = torch.randn(3, 8, 2)
    for seed in (0, 1):
        a = policy.predict_action_chunk(_obs(), noise=noise, generator=torch.Generator().manual_seed(seed))
        b = loaded.predict_action_chunk(_obs(), noise=noise, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(a, b)
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert meta["format_version"] == 1 and meta["policy"] == name and meta["metadata"] == {"note": "x"}


def test_ema_weights_are_saved_and_chosen(tmp_path):
    policy = _policy()
    ema = EMA(policy)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.1)
    ema.update(policy)  # first update uses decay 0: copies
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.1)
    save(policy, tmp_path / "c", ema=ema.shadow)
    obs, noise = _obs(), torch.randn(3, 8, 2)
    ref_model = policy.predict_action_chunk(obs, noise=noise)
    ref_ema = ema.shadow.predict_action_chunk(obs, noise=noise)
    assert not torch.equal(ref_model, ref_ema)
    assert torch.equal(load(tmp_path / "c").predict_action_chunk(obs, noise=noise), ref_ema)  # auto -> EMA
    assert torch.equal(load(tmp_path / "c", weights="model").predict_action_chunk(obs, noise=noise), ref_model)
    policy.save(tmp_path / "plain")
    with pytest.raises(KeyError, match="EMA"):
        load(tmp_path / "plain", weights="ema")


def test_ema_decay_schedule_and_average():
    lin = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    ema = EMA(lin)
    values, ref = [1.0, 2.0, 3.0], 0.0
    for i, v in enumerate(values):
        d = min(1 - (1 + i) ** -0.75, 0.9999)
        assert ema.decay() == pytest.approx(d)
        with torch.no_grad():
            lin.weight.fill_(v)
        ema.update(lin)
        ref = d * ref + (1 - d) * v
    assert ema.shadow.weight.item() == pytest.approx(ref)


@pytest.mark.parametrize("opt", ["adamw", "muon"])
def test_trainer_state_round_trip_restores_the_optimizer(tmp_path, opt):
    policy = _policy()
    batch = {"obs": _obs(4), "action": torch.randn(4, 8, 2)}

    def step(model, optim, seed):
        loss, _ = model.compute_loss(batch, generator=torch.Generator().manual_seed(seed))
        optim.zero_grad()
        loss.backward()
        optim.step()

    optim = make_optimizer(opt, policy, lr=1e-3)
    step(policy, optim, 0)
    save(policy, tmp_path / "c", trainer_state={"optimizer": optim.state_dict(), "step": 1,
                                                "rng": torch.get_rng_state(), "pair": (1, 2.5)})
    state = read_trainer_state(tmp_path / "c")
    assert state["step"] == 1 and state["pair"] == (1, 2.5) and torch.equal(state["rng"], torch.get_rng_state())
    restored = load(tmp_path / "c", weights="model").train()
    optim2 = make_optimizer(opt, restored, lr=1e-3)
    optim2.load_state_dict(state["optimizer"])
    step(policy, optim, 1)
    step(restored, optim2, 1)
    for a, b in zip(policy.parameters(), restored.parameters()):
        assert torch.equal(a, b)


def test_save_is_atomic_and_overwrites(tmp_path):
    policy = _policy()
    policy.save(tmp_path / "c")
    before = (tmp_path / "c" / "model.safetensors").read_bytes()
    with pytest.raises(TypeError, match="object"):
        save(policy, tmp_path / "c", trainer_state={"bad": object()})
    assert (tmp_path / "c" / "model.safetensors").read_bytes() == before  # old checkpoint intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temp dirs left
    with torch.no_grad():
        next(policy.parameters()).add_(1.0)
    policy.save(tmp_path / "c")
    assert (tmp_path / "c" / "model.safetensors").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_bad_checkpoints_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a ttfkit policy checkpoint"):
        load(tmp_path)
    policy = _policy()
    policy.save(tmp_path / "c")
    cfg = json.loads((tmp_path / "c" / "config.json").read_text())
    cfg["format_version"] = 99
    (tmp_path / "c" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="format_version 99"):
        load(tmp_path / "c")


def test_save_replaces_only_a_checkpoint_and_refuses_non_finite_weights(tmp_path):
    policy = _policy()
    user = tmp_path / "notes"
    user.mkdir()
    (user / "todo.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"notes: refusing to replace it: it is a folder without"):
        save(policy, user)
    assert sorted(p.name for p in user.iterdir()) == ["todo.txt"]
    save(policy, tmp_path / "c")
    save(policy, tmp_path / "c")  # a checkpoint replaces a checkpoint
    with torch.no_grad():
        next(policy.parameters())[0] = float("nan")
    with pytest.raises(ValueError, match=r"refusing to save a checkpoint with non-finite values in 'model\."):
        save(policy, tmp_path / "c")
    assert torch.isfinite(load(tmp_path / "c", weights="model").state_dict()[next(iter(policy.state_dict()))]).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "notes"]
