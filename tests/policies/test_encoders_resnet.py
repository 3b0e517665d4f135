"""Diffusion Policy's vision encoder (GroupNorm ResNet-18 + spatial softmax) and random-crop
augmentation: shapes, parameter count against torchvision's ResNet-18, one encoder per camera, crops
that are windows of the input, centre crop at eval, seeded determinism."""

import itertools

import pytest
import torch
from torch import nn

from ttfkit.policies import load, make_policy
from ttfkit.policies.encoders import EncoderConfig, ObsEncoder, crop_images
from ttfkit.policies.encoders_resnet import ResNet18GN

# torchvision.models.resnet18(): 11,689,512 parameters, of which the classifier fc holds 512*1000+1000.
# GroupNorm has the same affine parameters as BatchNorm, so the trunk without fc must match exactly.
RESNET18_WITHOUT_FC = 11_689_512 - (512 * 1000 + 1000)


def test_resnet18_trunk_matches_resnet18_size_and_uses_groupnorm():
    trunk = ResNet18GN(width=64)
    assert sum(p.numel() for p in trunk.parameters()) == RESNET18_WITHOUT_FC
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in trunk.modules())
    norms = [m for m in trunk.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 1 + 4 * 2 * 2 + 3  # stem, two per block, three downsampling shortcuts
    assert all(m.num_groups == m.num_channels // 16 for m in norms)
    with pytest.raises(ValueError, match="width"):
        ResNet18GN(width=24)


@pytest.mark.parametrize("size,fmap", [(76, 3), (84, 3), (96, 3), (64, 2)])
def test_resnet18_trunk_downsamples_by_32(size, fmap):
    out = ResNet18GN(width=16)(torch.randn(2, 3, size, size))
    assert out.shape == (2, 128, fmap, fmap)


def _config(**kw):
    return EncoderConfig(**{"image_encoder": "resnet18", "resnet_width": 16, "image_keypoints": 8,
                            "image_features": 16, "lowdim_hidden": 16, "lowdim_features": 8, **kw})


def test_one_resnet_per_camera_with_output_width_and_gradients():
    torch.manual_seed(0)
    shapes = {"agent_pos": (4,), "pixels_corner": (3, 84, 84), "pixels_gripperPOV": (3, 64, 64)}
    enc = ObsEncoder(shapes, n_obs_steps=2, config=_config(crop_ratio=0.9))
    assert enc.out_dim == 8 + 2 * 2 * 16
    cams = [enc.images["pixels_corner"], enc.images["pixels_gripperPOV"]]
    assert all(type(c).__name__ == "ResNetImageEncoder" for c in cams)
    assert not {id(p) for p in cams[0].parameters()} & {id(p) for p in cams[1].parameters()}
    obs = {"agent_pos": torch.randn(3, 2, 4), "pixels_corner": torch.rand(3, 2, 3, 84, 84) * 2 - 1,
           "pixels_gripperPOV": torch.rand(3, 2, 3, 64, 64) * 2 - 1}
    out = enc(obs, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, enc.out_dim)
    out.square().sum().backward()
    for cam in cams:
        assert cam.trunk.stem[0].weight.grad.abs().sum() > 0
    # Each camera's features depend on its own image only.
    enc.eval()
    base = enc(obs)
    changed = dict(obs, pixels_gripperPOV=torch.zeros(3, 2, 3, 64, 64))
    diff = (enc(changed) - base).abs().sum(dim=0)
    assert diff[: 8 + 2 * 16].max() == 0 and diff[8 + 2 * 16:].max() > 0


def test_random_crops_are_windows_of_the_input_and_cover_every_position():
    x = torch.arange(2 * 6 * 7, dtype=torch.float32).reshape(1, 2, 6, 7).repeat(400, 1, 1, 1)
    out = crop_images(x, (4, 4), random=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == (400, 2, 4, 4)
    seen = set()
    for crop in out:
        hits = [(t, l) for t, l in itertools.product(range(3), range(4))
                if torch.equal(crop, x[0, :, t:t + 4, l:l + 4])]
        assert len(hits) == 1
        seen.add(hits[0])
    assert seen == set(itertools.product(range(3), range(4)))  # all 12 positions drawn


def test_crop_is_seeded_and_centred_at_eval():
    x = torch.rand(16, 3, 84, 84)
    a = crop_images(x, (76, 76), random=True, generator=torch.Generator().manual_seed(1))
    b = crop_images(x, (76, 76), random=True, generator=torch.Generator().manual_seed(1))
    c = crop_images(x, (76, 76), random=True, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    torch.testing.assert_close(crop_images(x, (76, 76), random=False), x[:, :, 4:80, 4:80], rtol=0, atol=0)
    with pytest.raises(ValueError, match="does not fit"):
        crop_images(x, (90, 76), random=False)


@pytest.mark.parametrize("image_encoder", ["conv", "resnet18"])
def test_encoder_crops_at_train_and_centre_crops_at_eval(image_encoder):
    torch.manual_seed(0)
    shapes = {"pixels": (3, 96, 96)}  # a 3x3 ResNet feature map after the crop, so positions matter
    enc = ObsEncoder(shapes, n_obs_steps=1, config=_config(image_encoder=image_encoder, crop_ratio=0.8,
                                                            image_channels=8))
    obs = {"pixels": torch.rand(4, 1, 3, 96, 96)}
    enc.train()
    first = enc(obs, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(enc(obs, generator=torch.Generator().manual_seed(5)), first, rtol=0, atol=0)
    assert not torch.allclose(enc(obs, generator=torch.Generator().manual_seed(6)), first)
    enc.eval()
    centre = enc.images["pixels"](obs["pixels"][:, 0, :, 9:86, 9:86])  # round(0.8 * 96) = 77, offset 9
    torch.testing.assert_close(enc(obs), centre, rtol=0, atol=0)
    torch.testing.assert_close(enc(obs, generator=torch.Generator().manual_seed(9)), centre, rtol=0, atol=0)


def test_encoder_config_checks():
    with pytest.raises(ValueError, match="image_encoder"):
        EncoderConfig(image_encoder="vit")
    with pytest.raises(ValueError, match="crop_ratio"):
        EncoderConfig(crop_ratio=0.0)
    with pytest.raises(ValueError, match="resnet_width"):
        EncoderConfig(resnet_width=8)
    with pytest.raises(ValueError, match="uncropped"):
        ObsEncoder({"pixels": (3, 8, 8)}, 1, EncoderConfig(crop_ratio=0.99))


def test_resnet_pixel_policy_saves_and_reloads(tmp_path):
    torch.manual_seed(0)
    policy = make_policy("flow", obs_shapes={"agent_pos": (3,), "pixels": (3, 48, 48)}, action_dim=2, horizon=8,
                         n_action_steps=4, backbone_options={"hidden_dim": 32, "n_blocks": 1}, num_steps=2,
                         encoder={"image_encoder": "resnet18", "resnet_width": 16, "crop_ratio": 0.9,
                                  "image_keypoints": 4, "image_features": 8, "lowdim_features": 8})
    policy.save(tmp_path / "ckpt")
    loaded = load(tmp_path / "ckpt")
    assert loaded.config.encoder == policy.config.encoder
    obs = {"agent_pos": torch.randn(2, 2, 3), "pixels": torch.rand(2, 2, 3, 48, 48)}
    policy.eval()
    noise = torch.randn(2, 8, 2)
    torch.testing.assert_close(loaded.predict_action_chunk(obs, noise=noise),
                               policy.predict_action_chunk(obs, noise=noise))
