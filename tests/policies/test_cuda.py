"""CUDA checks (marker ``cuda``; skipped when torch sees no GPU; run by scripts/gpu_check.sh):
a policy on the GPU agrees with its CPU copy, rolls out per-episode reproducibly through the
evaluator, and trains with bf16 autocast."""

import pytest
import torch

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

OBS = {"agent_pos": (4,), "environment_state": (17,)}


def _policy():
    from ttfkit.policies import make_policy

    torch.manual_seed(0)
    return make_policy("flow", obs_shapes=OBS, action_dim=4, horizon=8, n_action_steps=4, num_steps=10,
                       backbone_options={"hidden_dim": 64, "n_blocks": 1}).eval()


def test_cuda_chunk_matches_cpu_within_float_tolerance():
    cpu = _policy()
    gpu = _policy().to("cuda")
    g = torch.Generator().manual_seed(1)
    obs = {k: torch.randn(5, 2, *s, generator=g) for k, s in OBS.items()}
    noise = torch.randn(5, 8, 4, generator=g)
    want = cpu.predict_action_chunk(obs, noise=noise)
    got = gpu.predict_action_chunk({k: v.cuda() for k, v in obs.items()}, noise=noise.cuda())
    torch.testing.assert_close(got.cpu(), want, rtol=1e-3, atol=1e-3)  # TF32/kernels differ in the last bits


def test_cuda_policy_per_episode_results_do_not_depend_on_n_envs():
    import ttfkit.envs as envs

    policy = _policy().to("cuda")
    runs = [envs.evaluate(policy, "ttfkit/metaworld-reach-v3", 5, seed=7, n_envs=n, workers=w, max_steps=24)
            for n, w in [(1, 0), (3, 0), (5, 2)]]
    for r in runs[1:]:
        assert (r.returns, r.lengths, r.successes) == (runs[0].returns, runs[0].lengths, runs[0].successes)
    assert len(set(runs[0].returns)) == 5


def test_cuda_training_with_amp_keeps_float32_weights(tmp_path, make_store):
    from ttfkit.policies.checkpoint import read_weights
    from ttfkit.policies.trainer import TrainConfig, train

    store = make_store(tmp_path / "s.zarr")
    cfg = TrainConfig(dataset=str(store), out=str(tmp_path / "run"), steps=20, batch=16, ckpt_every=20, horizon=8,
                      n_action_steps=4, device="cuda", amp=True, backbone="unet",
                      backbone_options={"down_dims": [32, 64]})
    model, ema = read_weights(train(cfg))
    assert all(v.dtype == torch.float32 for v in model.values() if v.is_floating_point())
    assert all(torch.isfinite(v).all() for v in model.values())
