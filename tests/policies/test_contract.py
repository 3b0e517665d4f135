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


def _per_key_chunk(policy, obs, noise, seed):
    """The chunk path written out key by key (normalise each key, pad each 8-row block, encode, sample, slice):
    the reference for the joined pipeline of ``ChunkPolicy``."""
    nz, n, rows = policy.normalizer, noise.shape[0], policy.block_rows
    pad = lambda x: torch.cat([x, x[:1].expand(rows - x.shape[0], *x.shape[1:])])  # noqa: E731
    g, out = torch.Generator().manual_seed(seed), []
    for start in range(0, n, rows):
        block = slice(start, min(n, start + rows))
        cond = policy.encoder({k: nz.normalize(k, pad(v[block].float())) for k, v in obs.items()})
        out.append(policy._sample(cond, pad(noise[block]), g)[:block.stop - start])
    return nz.unnormalize("action", torch.cat(out))


@pytest.mark.parametrize("name", ["flow", "diffusion"])
def test_joined_observation_pipeline_equals_per_key_normalisation_bit_for_bit(name):
    # the policy joins the low-dim keys once and normalises them with one (scale, offset); the keys come in
    # non-sorted order with per-key stats of both modes, over two blocks of rows (11 = 8 + 3 padded)
    obs_shapes = {"z_state": (3,), "a_pos": (2,)}
    nz = Normalizer.from_dict({"z_state": {"mode": "meanstd", "min": [0.0] * 3, "max": [1.0] * 3,
                                           "mean": [0.5, -1.0, 2.0], "std": [2.0, 0.3, 5.0]},
                               "a_pos": {"mode": "minmax", "min": [-3.0, 0.0], "max": [1.0, 0.5],
                                         "mean": [0.0] * 2, "std": [1.0] * 2},
                               "action": {"mode": "minmax", "min": [-1.0, -2.0], "max": [1.0, 3.0],
                                          "mean": [0.0] * 2, "std": [1.0] * 2}})
    torch.manual_seed(0)
    policy = make_policy(name, normalizer=nz, obs_shapes=obs_shapes, action_dim=2, horizon=8, n_action_steps=4,
                         backbone_options=SMALL["mlp"], encoder={"lowdim_hidden": 16, "lowdim_features": 8}).eval()
    g = torch.Generator().manual_seed(1)
    obs = {k: 3 * torch.randn(11, 2, *s, generator=g, dtype=torch.float64) for k, s in obs_shapes.items()}
    noise = torch.randn(11, 8, 2, generator=g)
    chunk = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(7), noise=noise)
    assert torch.equal(chunk, _per_key_chunk(policy, obs, noise, 7))
    row9 = policy.encode_obs_blocks({k: v[9:10] for k, v in obs.items()})[0]
    assert torch.equal(policy.encode_obs_blocks(obs)[9], row9)  # a row's features do not depend on its batch

    # new stats loaded in place: the cached joined (scale, offset) follows them
    other = Normalizer.from_dict({**nz.to_dict(), "a_pos": {"mode": "minmax", "min": [0.0, -9.0], "max": [4.0, 9.0],
                                                            "mean": [0.0] * 2, "std": [1.0] * 2}})
    policy.normalizer.load_state_dict(other.state_dict())
    moved = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(7), noise=noise)
    assert not torch.equal(moved, chunk) and torch.equal(moved, _per_key_chunk(policy, obs, noise, 7))


def test_an_observation_that_overflows_float32_is_refused_by_name():
    torch.manual_seed(0)
    policy = make_policy("flow", normalizer=_normalizer(), obs_shapes=OBS, action_dim=2, horizon=8, n_action_steps=4,
                         backbone_options=SMALL["mlp"]).eval()
    obs = {k: torch.zeros(2, 2, *s, dtype=torch.float64) for k, s in OBS.items()}
    obs["environment_state"][1, 1, 2] = 1e300  # finite in float64, inf once the policy reads it as float32
    with pytest.raises(ValueError, match=r"observation 'environment_state' holds a non-finite value inf at index "
                                         r"\(1, 1, 2\) \(B, To, \.\.\.\) as float32"):
        policy.predict_action_chunk(obs)
