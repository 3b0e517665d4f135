"""Registry-wide contract: every registered policy, on every backbone, builds, learns a step without
NaNs, round-trips through a checkpoint with identical actions, and is deterministic given a seed."""

import pytest
import torch

from ttfkit.data import Normalizer
from ttfkit.policies import list_policies, load, make_policy
from ttfkit.policies.backbones import list_backbones

OBS = {"agent_pos": (3,), "environment_state": (4,)}
SMALL = {"mlp": {"hidden_dim": 32, "n_blocks": 1}, "unet": {"down_dims": [16, 32], "time_dim": 16},
         "transformer": {"d_model": 32, "n_layers": 1, "n_heads": 2}}


def test_registry_lists_both_policies_and_all_backbones():
    assert list_policies() == ["diffusion", "flow"]
    assert list_backbones() == ["mlp", "transformer", "unet"]


def _normalizer():
    dims = {"agent_pos": 3, "environment_state": 4, "action": 2}
    return Normalizer.from_dict({k: {"mode": "meanstd", "min": [0.0] * d, "max": [1.0] * d,
                                     "mean": [0.5] * d, "std": [2.0] * d} for k, d in dims.items()})


@pytest.mark.parametrize("backbone", ["mlp", "unet", "transformer"])
@pytest.mark.parametrize("name", ["flow", "diffusion"])
def test_policy_contract(tmp_path, name, backbone):
    torch.manual_seed(0)
    policy = make_policy(name, normalizer=_normalizer(), obs_shapes=OBS, action_dim=2, horizon=8,
                         n_action_steps=4, backbone=backbone, backbone_options=SMALL[backbone],
                         encoder={"lowdim_hidden": 16, "lowdim_features": 8})
    assert policy.name == name and policy.num_params == sum(p.numel() for p in policy.parameters())
    g = torch.Generator().manual_seed(1)
    batch = {"obs": {k: torch.randn(16, 2, *s, generator=g) for k, s in OBS.items()},
             "action": torch.randn(16, 8, 2, generator=g)}
    noise = policy.draw_loss_noise(16, torch.Generator().manual_seed(2))

    # one optimizer step on a fixed batch and fixed noise lowers the loss, nothing NaN
    optim = torch.optim.Adam(policy.parameters(), lr=1e-3)
    before, metrics = policy.compute_loss(batch, noise=noise)
    assert torch.isfinite(before) and metrics["loss"] == pytest.approx(before.item())
    optim.zero_grad()
    before.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in policy.parameters())
    optim.step()
    after, _ = policy.compute_loss(batch, noise=noise)
    assert after.item() < before.item()

    # seeded determinism and save/load round trip
    policy.eval()
    obs = batch["obs"]
    a = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(5))
    assert torch.isfinite(a).all() and a.shape == (16, 8, 2)
    assert torch.equal(a, policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(5)))
    assert not torch.equal(a, policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(6)))
    policy.save(tmp_path / "ckpt")
    loaded = load(tmp_path / "ckpt")
    assert torch.equal(a, loaded.predict_action_chunk(obs, generator=torch.Generator().manual_seed(5)))

    # receding-horizon interface: reset + select_action on numpy env observations
    loaded.reset()
    act = loaded.select_action({k: v[:, -1].numpy() for k, v in obs.items()})
    assert act.shape == (16, 2) and torch.isfinite(act).all()


def test_sinusoidal_embedding_matches_the_formula_and_trains_after_inference_use():
    # sin/cos of 1000·t·10000^(-i/(half-1)), written here independently; the frequencies are cached, and a cache
    # first filled under inference_mode must still serve a graph that needs gradients (inference tensors cannot be
    # saved for backward).
    from ttfkit.policies.backbones import _FREQUENCIES, sinusoidal_embedding

    _FREQUENCIES.clear()
    t = torch.tensor([0.0, 0.25, 0.9], dtype=torch.float64)
    half = 5
    ref = torch.cat([torch.sin(1000.0 * t[:, None] * 10000.0 ** (-torch.arange(half) / (half - 1))),
                     torch.cos(1000.0 * t[:, None] * 10000.0 ** (-torch.arange(half) / (half - 1)))], 1)
    with torch.inference_mode():
        first = sinusoidal_embedding(t.float(), 2 * half)
    torch.testing.assert_close(first.double(), ref, atol=2e-3, rtol=0)  # float32 args up to 1000 rad
    tg = t.float().requires_grad_(True)
    out = sinusoidal_embedding(tg, 2 * half)
    out.sum().backward()  # d/dt sum(sin + cos) = sum f·(cos - sin), f = 1000·freq
    f = 1000.0 * 10000.0 ** (-torch.arange(half) / (half - 1))
    torch.testing.assert_close(tg.grad.double(), (f * (torch.cos(f * t[:, None]) - torch.sin(f * t[:, None]))).sum(1),
                               atol=5.0, rtol=1e-3)
    assert torch.equal(out.detach(), first)
