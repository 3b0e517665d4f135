"""Alignment of pixel policies on real Meta-World (24x24 images from camera corner2, recorded by `ttf collect`):
`ttf gap --align` on a pixel store, `ttf align` best-of-1 against `ttf eval`, the look-ahead envs'
images, and a `ttf critic` whose features are the policy's encoding of the recorded camera.

One study (collect 2 demos, train 4 steps, evaluate, fit a critic, align) is shared by the tests."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import ttfkit.envs  # noqa: F401
from ttfkit.align.critic import load_critic
from ttfkit.envs import EvalResult, make_env
from ttfkit.policies import load
from ttfkit.scripts import cli
from ttfkit.scripts.align import build_reward
from ttfkit.scripts.image_options import image_options

ENV = "ttfkit/metaworld-reach-v3"
VIEW = {"pixels": True, "image_size": 24, "camera": "corner2"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """(store, checkpoint) of `ttf gap --dataset PIXEL_STORE --align best-of-n --reward critic --particles 1`."""
    root = tmp_path_factory.mktemp("pixels")
    store, out = root / "px.zarr", root / "gap"
    assert cli.main(["collect", "--env", ENV, "--episodes", "2", "--out", str(store), "--pixels", "--image-size", "24",
                     "--camera", "corner2", "--no-environment-state"]) == 0
    assert cli.main(["gap", "--dataset", str(store), "--obs-keys", "agent_pos", "pixels", "--optims", "adamw",
                     "--steps", "4", "--ckpt-every", "4", "--batch", "8", "--episodes", "2", "--max-steps", "30",
                     "--workers", "0", "--threads", "1", "--align", "best-of-n", "--reward", "critic",
                     "--critic-episodes", "3", "--particles", "1", "--out", str(out)]) == 0
    (ckpt,) = (out / "runs").glob("*/checkpoints/step_000004")
    return store, ckpt


def _same_episodes(a: EvalResult, b: EvalResult) -> None:
    """Episode for episode: seeds, successes and lengths exactly; returns to float rounding (the base
    policy samples in padded blocks of 8 rows, the aligner its N rows: CPU reduction orders differ)."""
    assert (a.seeds, a.successes, a.lengths) == (b.seeds, b.successes, b.lengths)
    np.testing.assert_allclose(a.returns, b.returns, rtol=1e-5)


def _view(result: EvalResult) -> dict:
    kwargs = json.loads(result.env_spec)["kwargs"]
    return {k: kwargs.get(k) for k in VIEW}


def test_gap_aligns_a_pixel_policy_and_best_of_1_is_its_base(study):
    _, ckpt = study
    base = EvalResult.from_json((ckpt / "eval.json").read_text())
    saved = json.loads((ckpt / "align" / "best-of-n-critic-x1.json").read_text())
    aligned = EvalResult.from_json(json.dumps(saved["eval"]))
    assert _view(base) == _view(aligned) == VIEW
    _same_episodes(base, aligned)
    rows = (ckpt.parents[3] / "aligned.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].split(",")[7:11] == [str(sum(base.successes)), "2"] * 2


def test_ttf_align_best_of_1_equals_ttf_eval_on_a_pixel_checkpoint(study, tmp_path):
    """No image flag: both commands render 24x24 corner2 images (the checkpoint's size, its store's camera)."""
    _, ckpt = study
    common = ["--checkpoint", str(ckpt), "--env", ENV, "--episodes", "2", "--max-steps", "30"]
    assert cli.main(["eval", *common, "--n-envs", "1", "--workers", "0", "--out", str(tmp_path / "eval.json")]) == 0
    assert cli.main(["align", *common, "--method", "best-of-n", "--particles", "1", "--reward", "rollout",
                     "--horizon", "8", "--out", str(tmp_path / "align.json")]) == 0
    base = EvalResult.from_json((tmp_path / "eval.json").read_text())
    out = json.loads((tmp_path / "align.json").read_text())
    aligned = EvalResult.from_json(json.dumps(out["eval"]))
    assert _view(base) == _view(aligned) == VIEW
    _same_episodes(base, aligned)
    assert out["align"]["sim_steps_per_chunk"] > 0  # the look-ahead ran (on images: the continuation reads them)


def test_lookahead_envs_render_what_the_policy_reads(study, capsys):
    _, ckpt = study
    policy = load(ckpt).eval()
    kwargs = image_options(policy.config.obs_shapes, checkpoint=ckpt)
    assert kwargs == VIEW
    reference = make_env(ENV, **VIEW)
    first = reference.reset(seed=100_000)[0]["pixels"]
    other = make_env(ENV, pixels=True, image_size=24, camera="corner").reset(seed=100_000)[0]["pixels"]
    assert not np.array_equal(first, other)  # the camera shows in the image
    for name in ("rollout", "sim"):
        reward, shadow = build_reward(name, policy, ENV, {}, max_steps=30, env_kwargs=kwargs, horizon=4)
        tracker = shadow if shadow is not None else reward.shadow
        tracker.reset_slot(0, 100_000)
        seen = tracker.history[0][-1]["pixels"]
        np.testing.assert_array_equal(seen, first)
        assert policy._env_to_dataset("pixels", {"pixels": seen[None]}).shape == (1, 3, 24, 24)
        tracker.close()
    with pytest.raises(ValueError, match=r"renders 'pixels' of shape \(32, 32, 3\).*the policy reads \(3, 24, 24\)"):
        build_reward("rollout", policy, ENV, {}, env_kwargs={"pixels": True, "image_size": 32})
    with pytest.raises(ValueError, match=r"gives no \['pixels'\]"):
        build_reward("rollout", policy, ENV, {}, env_kwargs={})
    argv = ["align", "--checkpoint", str(ckpt), "--env", ENV, "--episodes", "1", "--method", "best-of-n",
            "--reward", "rollout", "--image-size", "32"]
    capsys.readouterr()
    assert cli.main(argv) == 2
    assert "--image-size 32: the checkpoint reads images of side {'pixels': 24}" in capsys.readouterr().err


def test_the_critic_of_a_pixel_policy_encodes_the_recorded_camera(study, tmp_path, capsys):
    """The critic `ttf gap` fitted (through `ttf critic`) records the images and observation shapes; its
    features are the policy's encoding of corner2 24x24 frames (checked on the first chunk of its first
    rollout, seed 300000); `ttf align --reward critic` uses it, and refuses it for another camera."""
    _, ckpt = study
    policy = load(ckpt).eval()
    critic = load_critic(ckpt / "critic")
    assert critic.meta["env_kwargs"] == VIEW
    assert critic.meta["obs_shapes"] == {"agent_pos": [4], "pixels": [3, 24, 24]}
    assert critic.sizes["cond_dim"] == policy.encoder.out_dim
    data = load_file(str(ckpt / "critic" / "rollouts.safetensors"))
    (row,) = ((data["episode"] == 300_000) & (data["step"] == 0)).nonzero()[:, 0].tolist()

    def encoding(camera):
        obs = make_env(ENV, pixels=True, image_size=24, camera=camera).reset(seed=300_000)[0]
        window = {k: torch.stack([policy._env_to_dataset(k, {k: obs[k][None]})[0]] * policy.config.n_obs_steps)[None]
                  for k in policy.config.obs_shapes}  # (1, To, ...): the first observation repeated
        return policy.encode_obs_blocks(window)[0]

    torch.testing.assert_close(data["cond"][row], encoding("corner2"), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(data["cond"][row], encoding("corner"), atol=1e-4)
    argv = ["align", "--checkpoint", str(ckpt), "--env", ENV, "--episodes", "1", "--max-steps", "8",
            "--method", "best-of-n", "--particles", "2", "--reward", "critic", "--critic", str(ckpt / "critic")]
    assert cli.main([*argv, "--out", str(tmp_path / "a.json")]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["align"]["nfe_per_chunk"] == 2 * policy.config.num_steps
    capsys.readouterr()
    assert cli.main([*argv, "--camera", "corner3"]) == 2
    err = capsys.readouterr().err
    assert "critic was fitted on images" in err and "'corner2'" in err and "'corner3'" in err


def test_lookahead_workers_render_what_the_policy_reads(study):
    """The rollout reward's worker processes build their envs with the policy's image options: the
    continuation (which reads images) gives the in-process values."""
    _, ckpt = study
    policy = load(ckpt).eval()
    chunks = torch.as_tensor(np.random.default_rng(1).uniform(-1, 1, (2, 8, 4)).astype(np.float32))
    values = []
    for workers in (0, 1):
        reward, _ = build_reward("rollout", policy, ENV, {}, max_steps=40, env_kwargs=VIEW, horizon=12,
                                 workers=workers)
        reward.reset_slot(0, 3)
        for a in np.zeros((6, 1, 4), np.float32):
            reward.observe(a)
        values.append(reward(chunks, {"slot": 0}))
        reward.close()
    torch.testing.assert_close(values[0], values[1], rtol=0, atol=0)


def test_ttf_critic_look_ahead_labels_render_what_the_policy_reads(study, tmp_path):
    """--lookahead-episodes plays candidates out in look-ahead envs whose continuation reads the images
    (an env without them is refused before any rollout)."""
    _, ckpt = study
    out = tmp_path / "critic"
    assert cli.main(["critic", "--checkpoint", str(ckpt), "--env", ENV, "--episodes", "2", "--heldout", "0.5",
                     "--max-steps", "12", "--steps", "5", "--members", "1", "--hidden", "8",
                     "--lookahead-episodes", "1", "--lookahead-candidates", "2", "--horizon", "4", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["env_kwargs"] == VIEW and report["lookahead_chunks"] > 0
    assert load_critic(out).meta["env_kwargs"] == VIEW


def test_a_distilled_diamond_directory_renders_its_distillation_store_camera(tmp_path):
    """`ttf align --checkpoint DIAMOND_DIR` finds the camera in the store `ttf distill` recorded; flags still win."""
    from ttfkit.data import ReplayBuffer

    store = tmp_path / "px.zarr"
    ReplayBuffer.create(store, attrs={"env_id": ENV, "env_kwargs": {"image_size": 24, "camera": "corner2"}})
    diamond = tmp_path / "diamond"
    diamond.mkdir()
    (diamond / "config.json").write_text(json.dumps({"kind": "diamond_map", "metadata": {"dataset": str(store)}}))
    shapes = {"agent_pos": (4,), "pixels": (3, 24, 24)}
    assert image_options(shapes, checkpoint=diamond) == VIEW
    assert image_options(shapes, checkpoint=diamond, camera=["corner3"]) == {**VIEW, "camera": "corner3"}
    assert image_options({"agent_pos": (4,)}, checkpoint=diamond) == {}
