"""Observation encoders and backbones: spatial softmax geometry, image policies end to end, backbone
conditioning, and the U-Net's sizes."""

import numpy as np
import pytest
import torch

from ttfkit.policies import load, make_policy
from ttfkit.policies.backbones import make_backbone
from ttfkit.policies.encoders import SpatialSoftmax
from ttfkit.policies.trainer import TrainConfig, train


def test_spatial_softmax_finds_a_sharp_peak():
    maps = torch.zeros(1, 2, 5, 7)
    maps[0, 0, 0, 6] = 100.0  # top right
    maps[0, 1, 2, 3] = 100.0  # centre
    xy = SpatialSoftmax()(maps)
    torch.testing.assert_close(xy[0], torch.tensor([[1.0, -1.0], [0.0, 0.0]]), atol=1e-4, rtol=0)
    flat = SpatialSoftmax()(torch.zeros(1, 1, 4, 4))  # uniform -> centre of mass at the middle
    torch.testing.assert_close(flat, torch.zeros(1, 1, 2), atol=1e-6, rtol=0)


def _image_policy(size):
    torch.manual_seed(0)
    return make_policy("flow", obs_shapes={"agent_pos": (3,), "pixels": (3, size, size)}, action_dim=2, horizon=8,
                       n_action_steps=4, backbone_options={"hidden_dim": 32, "n_blocks": 1}, num_steps=2,
                       encoder={"lowdim_hidden": 16, "lowdim_features": 8, "image_channels": 8,
                                "image_keypoints": 4, "image_features": 8})


@pytest.mark.parametrize("size", [84, 96])
def test_image_policy_trains_end_to_end_and_accepts_env_pixels(size):
    policy = _image_policy(size)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(2, size, size, 3), dtype=np.uint8)  # env units: B x H x W x 3
    pos = rng.normal(size=(2, 3)).astype(np.float32)
    batch = {"obs": {"agent_pos": torch.from_numpy(pos)[:, None].repeat(1, 2, 1),
                     "pixels": (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255)[:, None].repeat(1, 2, 1, 1, 1)},
             "action": torch.randn(2, 8, 2)}
    loss, _ = policy.compute_loss(batch, generator=torch.Generator().manual_seed(0))
    loss.backward()
    first_conv = policy.encoder.images["pixels"].convs[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0  # gradients reach the pixels encoder
    # select_action on raw env pixels equals predicting on dataset-unit pixels (To copies of step 0)
    policy.reset()
    act = policy.select_action({"agent_pos": pos, "pixels": pixels}, generator=torch.Generator().manual_seed(3))
    chunk = policy.predict_action_chunk(batch["obs"], generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(act, chunk[:, 1])
    with pytest.raises(ValueError, match="pixels"):
        policy.select_action({"agent_pos": pos, "pixels": pixels[:, :10]})


def test_float_depth_from_the_env_is_moved_channels_first():
    torch.manual_seed(0)
    policy = make_policy("flow", obs_shapes={"agent_pos": (3,), "depth": (1, 20, 24)}, action_dim=2, horizon=8,
                         n_action_steps=4, backbone_options={"hidden_dim": 32, "n_blocks": 1}, num_steps=2,
                         encoder={"lowdim_hidden": 16, "lowdim_features": 8, "image_channels": 8,
                                  "image_keypoints": 4, "image_features": 8})
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.2, 3.0, size=(2, 20, 24, 1)).astype(np.float32)  # env units: B x H x W x 1, metres
    pos = rng.normal(size=(2, 3)).astype(np.float32)
    obs = {"agent_pos": torch.from_numpy(pos)[:, None].repeat(1, 2, 1),  # dataset units: (B, To, 1, H, W), as stored
           "depth": torch.from_numpy(depth).permute(0, 3, 1, 2)[:, None].repeat(1, 2, 1, 1, 1)}
    policy.reset()
    act = policy.select_action({"agent_pos": pos, "depth": depth}, generator=torch.Generator().manual_seed(3))
    chunk = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(act, chunk[:, 1])
    policy.reset()  # already channels-first env depth passes unchanged
    again = policy.select_action({"agent_pos": pos, "depth": depth.transpose(0, 3, 1, 2)},
                                 generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(again, act)


def test_pixel_dataset_trains_and_reloads(tmp_path, make_store):
    store = make_store(tmp_path / "px.zarr", n_episodes=2, length=12, pixels=True)
    config = TrainConfig(dataset=str(store), out=str(tmp_path / "run"), steps=2, batch=4, ckpt_every=2,
                         val_fraction=0.0, horizon=8, n_action_steps=4, obs_keys=("agent_pos", "pixels"),
                         backbone_options={"hidden_dim": 32, "n_blocks": 1},
                         policy_options={"encoder": {"lowdim_hidden": 16, "lowdim_features": 8, "image_channels": 8,
                                                     "image_keypoints": 4, "image_features": 8}})
    policy = load(train(config))
    assert policy.config.obs_shapes == {"agent_pos": (3,), "pixels": (3, 84, 84)}
    assert policy.normalizer.mode("pixels") == "image"


@pytest.mark.parametrize("name,options", [("mlp", {"hidden_dim": 32, "n_blocks": 2}),
                                          ("unet", {"down_dims": [16, 32, 64], "time_dim": 16}),
                                          ("transformer", {"d_model": 32, "n_layers": 2, "n_heads": 4})])
def test_backbones_use_time_and_condition(name, options):
    torch.manual_seed(0)
    net = make_backbone(name, action_dim=3, horizon=16, cond_dim=5, options=options)
    x, t, c = torch.randn(4, 16, 3), torch.rand(4), torch.randn(4, 5)
    out = net(x, t, c)
    assert out.shape == (4, 16, 3)
    assert not torch.allclose(out, net(x, t, c + 1.0))
    assert not torch.allclose(out, net(x, (t + 0.3) % 1, c))
    torch.testing.assert_close(net(x[:2], t[:2], c[:2]), out[:2])  # samples are independent


def test_unet_sizes_and_horizon_check():
    with pytest.raises(ValueError, match="divisible by 4"):
        make_backbone("unet", action_dim=2, horizon=10, cond_dim=4, options={"down_dims": [16, 32, 64]})
    with pytest.raises(ValueError, match="n_groups"):
        make_backbone("unet", action_dim=2, horizon=16, cond_dim=4, options={"down_dims": [12, 24]})
    default = make_backbone("unet", action_dim=4, horizon=16, cond_dim=128)
    n = sum(p.numel() for p in default.parameters())
    assert 2e6 < n < 8e6  # a few M parameters by default
    big = make_backbone("unet", action_dim=4, horizon=16, cond_dim=128, options={"down_dims": [256, 512, 1024]})
    assert sum(p.numel() for p in big.parameters()) > 60e6  # Diffusion Policy's size
