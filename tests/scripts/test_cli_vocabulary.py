"""One CLI vocabulary: old spellings still work, warn once and parse to the same options as the new ones;
help shows defaults; --config files (YAML/JSON) under the flags; train_config.json is a valid config and
`ttf train --resume RUN_DIR` needs nothing else; gap presets overridden flag by flag (the real table);
`ttf eval` renders images the way the checkpoint was trained."""

import json

import numpy as np
import pytest
import torch

from ttfkit.data import ReplayBuffer
from ttfkit.envs.evaluate import EvalResult
from ttfkit.scripts import cli, gap, train


def _parse(argv):
    return cli.parse(argv)[2]


def _options(args, names):
    return {n: getattr(args, n) for n in names}


# (old argv, new argv, options that must agree)
RENAMED = [
    (["eval", "--policy", "ck", "--seed", "7"], ["eval", "--checkpoint", "ck", "--episode-seed", "7"],
     ["checkpoint", "expert", "episode_seed"]),
    (["eval", "--policy", "expert", "--env", "e"], ["eval", "--expert", "--env", "e"], ["checkpoint", "expert"]),
    (["align", "--policy", "ck", "--env", "e", "--seed", "5", "--workers", "2"],
     ["align", "--checkpoint", "ck", "--env", "e", "--episode-seed", "5", "--lookahead-workers", "2"],
     ["checkpoint", "episode_seed", "lookahead_workers"]),
    (["distill", "--policy", "ck", "--dataset", "d", "--out", "o"],
     ["distill", "--checkpoint", "ck", "--dataset", "d", "--out", "o"], ["checkpoint"]),
    (["critic", "--policy", "ck", "--env", "e", "--out", "o"], ["critic", "--checkpoint", "ck", "--env", "e", "--out", "o"],
     ["checkpoint"]),
    (["gap", "--env", "e", "--optim", "adamw,muon", "--eval-episodes", "3", "--eval-max-steps", "9", "--out", "o"],
     ["gap", "--env", "e", "--optims", "adamw,muon", "--episodes", "3", "--max-steps", "9", "--out", "o"],
     ["optims", "eval_episodes", "eval_max_steps"]),
]


@pytest.mark.parametrize("old,new,names", RENAMED, ids=[r[0][0] + "-" + r[0][1] for r in RENAMED])
def test_old_spellings_warn_once_and_parse_like_the_new_ones(old, new, names, capsys):
    with pytest.warns(DeprecationWarning, match="is deprecated"):
        was = _parse(old)
    err = capsys.readouterr().err
    for flag in [a for a in old if a.startswith("--") and a not in new]:
        assert err.count(f"warning: {flag} is deprecated") == 1, err
    now = _parse(new)
    assert "deprecated" not in capsys.readouterr().err
    assert _options(was, names) == _options(now, names)


def test_train_policy_type_and_its_old_spelling_give_the_same_config(capsys):
    base = ["train", "--dataset", "d.zarr", "--out", "r", "--backbone-option", "hidden_dim=32"]
    with pytest.warns(DeprecationWarning):
        old = train.config_from_args(_parse([*base, "--policy", "diffusion", "--policy", "diffusion"]))
    assert capsys.readouterr().err.count("--policy is deprecated") == 1  # once, however often it is given
    new = train.config_from_args(_parse([*base, "--policy-type", "diffusion"]))
    assert old == new and new.policy == "diffusion" and new.backbone_options == {"hidden_dim": 32}


def test_a_required_option_is_still_required_under_either_spelling(capsys):
    with pytest.raises(SystemExit) as e:
        _parse(["distill", "--dataset", "d", "--out", "o"])
    assert e.value.code == 2 and "required: --checkpoint" in capsys.readouterr().err


def test_help_shows_defaults_and_hides_old_spellings(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--steps STEPS" in out and "(default: 2000)" in out and "(default: adamw)" in out
    assert "--policy-type" in out and "--policy " not in out and "--policy\n" not in out
    with pytest.raises(SystemExit):
        cli.main(["gap", "--help"])
    out = capsys.readouterr().out
    assert "--episodes N" in out and "--eval-episodes" not in out and "--optim " not in out


def test_config_file_values_are_defaults_and_flags_override_only_themselves(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("dataset: d.zarr\nout: r\nsteps: 77\nlr: 0.01\npolicy_options: {num_steps: 3, sampler: heun}\n"
                    "no-progress: true\nwarmup: 5\n")
    cfg = train.config_from_args(_parse(["train", "--config", str(path), "--lr", "0.5",
                                         "--policy-option", "num_steps=2"]))
    assert (cfg.dataset, cfg.steps, cfg.lr, cfg.warmup_steps) == ("d.zarr", 77, 0.5, 5)
    assert cfg.policy_options == {"num_steps": 2, "sampler": "heun"}  # one key overridden, the other kept
    json_path = tmp_path / "align.json"
    json_path.write_text(json.dumps({"checkpoint": "ck", "env": "e", "episode-seed": 9, "particles": 4}))
    args = _parse(["align", "--config", str(json_path), "--particles", "16"])
    assert (args.checkpoint, args.episode_seed, args.particles) == ("ck", 9, 16)
    json_path.write_text(json.dumps({"checkpoint": "ck", "env": "e", "out": "c", "label": "discounted"}))
    args = _parse(["critic", "--config", str(json_path), "--members", "3"])
    assert (args.checkpoint, args.out, args.label, args.members) == ("ck", "c", "discounted", 3)


@pytest.mark.parametrize("text,message", [
    ("steps: 10\nstepz: 3\n", "unknown key 'stepz'"),
    ("steps: ten\n", "key 'steps' must be an integer"),
    ("backbone: resnet\n", "key 'backbone' must be one of ['mlp', 'transformer', 'unet']"),
    ("stream: 1\n", "key 'stream' must be true or false"),
    ("- steps\n", "a config file holds a mapping"),
    ("steps: [1\n", "not valid YAML"),
])
def test_bad_config_files_name_the_file_and_the_key(tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert cli.main(["train", "--dataset", "d", "--out", "o", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ttf train: error: {path}: ") and message in err, err


def _tiny_store(path, n_episodes=4, length=12):
    with ReplayBuffer.create(path) as buf:
        for i in range(n_episodes):
            rng = np.random.default_rng(i)
            buf.add_episode({"agent_pos": rng.normal(size=(length, 3)).astype(np.float32),
                             "environment_state": rng.normal(size=(length, 2)).astype(np.float32),
                             "action": rng.uniform(-1, 1, size=(length, 2)).astype(np.float32)})
    return path


def test_train_config_json_is_a_config_and_resume_needs_only_the_run_dir(tmp_path, capsys):
    from safetensors.torch import load_file

    store = _tiny_store(tmp_path / "s.zarr")
    run = tmp_path / "run"
    assert cli.main(["train", "--dataset", str(store), "--out", str(run), "--steps", "4", "--ckpt-every", "2",
                     "--batch", "8", "--horizon", "8", "--n-action-steps", "4", "--val-fraction", "0", "--warmup",
                     "1", "--backbone-option", "hidden_dim=16", "--backbone-option", "n_blocks=1",
                     "--policy-option", "num_steps=2", "--threads", "1", "--device", "cpu", "--no-progress"]) == 0
    saved = json.loads((run / "train_config.json").read_text())
    again = train.config_from_args(_parse(["train", "--config", str(run / "train_config.json")]))
    assert again.to_dict() == saved  # the saved config, read back as a --config, is the same run

    last = run / "checkpoints" / "step_000004"
    weights = load_file(str(last / "model.safetensors"))
    import shutil

    shutil.rmtree(last)  # an interrupted run: resume from step 2 with no flag but the run folder
    moved = tmp_path / "moved"
    run.rename(moved)
    assert cli.main(["train", "--resume", str(moved), "--no-progress"]) == 0
    resumed = load_file(str(moved / "checkpoints" / "step_000004" / "model.safetensors"))
    assert weights.keys() == resumed.keys()
    for k in weights:
        torch.testing.assert_close(resumed[k], weights[k], rtol=0, atol=0)
    assert json.loads((moved / "train_config.json").read_text()) == {**saved, "out": str(moved)}


def _gap(*flags):
    return gap._configs(_parse(["gap", *flags, "--out", "o"]))


def test_gap_preset_with_env_keeps_the_preset_and_flags_override_only_themselves():
    full = gap.PRESETS["full"][0]
    (cfg,) = _gap("--preset", "full", "--env", "ttfkit/metaworld-reach-v3")
    for key in ("backbone", "steps", "seeds", "eval_episodes", "optims", "ckpt_every", "demos"):
        assert getattr(cfg, key) == full[key], key
    assert cfg.env == "ttfkit/metaworld-reach-v3" and cfg.backbone == "unet" and cfg.steps == 10000
    (one,) = _gap("--preset", "full", "--env", "ttfkit/metaworld-reach-v3", "--seeds", "1",
                  "--optim-option", "damping=0.001")
    assert one.seeds == 1 and one.optim_options == {"damping": 0.001}
    assert {k: v for k, v in vars(one).items() if k not in ("seeds", "optim_options")} == \
        {k: v for k, v in vars(cfg).items() if k not in ("seeds", "optim_options")}
    # a study preset whose tasks differ: --env picks its entries for that env, named as in the table
    peg = _gap("--preset", "dopr-study", "--env", "ttfkit/metaworld-peg-insert-side-v3", "--episodes", "5")
    table = [e for e in gap.PRESETS["dopr-study"] if e["env"] == "ttfkit/metaworld-peg-insert-side-v3"]
    assert [c.demos for c in peg] == [e["demos"] for e in table] == [5, 25]
    assert [c.out for c in peg] == [f"o/{e['name']}" for e in table]
    assert all(c.eval_episodes == 5 and c.tune_episodes == 20 for c in peg)
    with pytest.raises(ValueError, match="differ in more than the env"):
        _gap("--preset", "dopr-study", "--env", "ttfkit/metaworld-reach-v3")


def test_gap_config_json_is_a_valid_config(tmp_path):
    import dataclasses

    (cfg,) = _gap("--preset", "demo", "--optim-lr", "adamw=1e-4,1e-3", "--seeds", "2")
    path = tmp_path / "gap_config.json"
    path.write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    (again,) = gap._configs(_parse(["gap", "--config", str(path)]))
    assert again == cfg
    (more,) = gap._configs(_parse(["gap", "--config", str(path), "--episodes", "50", "--out", "o2"]))
    assert dataclasses.replace(cfg, eval_episodes=50, out="o2") == more


def test_ttf_eval_renders_images_as_the_checkpoint_was_trained(tmp_path, capsys):
    """A pixel policy trained at 24x24 from camera corner2 (recorded by ttf collect in its store) is
    evaluated at 24x24 from corner2 with no image flag; a contradicting --image-size is refused."""
    from ttfkit.policies import make_policy

    store = tmp_path / "px.zarr"
    ReplayBuffer.create(store, attrs={"env_id": "ttfkit/metaworld-reach-v3",
                                      "env_kwargs": {"image_size": 24, "camera": "corner2"}})
    torch.manual_seed(0)
    policy = make_policy("flow", obs_shapes={"agent_pos": (4,), "pixels": (3, 24, 24)}, action_dim=4, horizon=8,
                         n_obs_steps=1, n_action_steps=4, num_steps=2,
                         encoder={"image_channels": 4, "crop_ratio": 1.0, "lowdim_hidden": 8, "lowdim_features": 8},
                         backbone_options={"hidden_dim": 16, "n_blocks": 1})
    ckpt = tmp_path / "ckpt"
    policy.save(ckpt, metadata={"train_config": {"dataset": str(store)}})
    out = tmp_path / "res.json"
    argv = ["eval", "--checkpoint", str(ckpt), "--env", "ttfkit/metaworld-reach-v3", "--episodes", "1",
            "--n-envs", "1", "--workers", "0", "--max-steps", "4", "--out", str(out)]
    assert cli.main(argv) == 0
    kwargs = json.loads(EvalResult.from_json(out.read_text()).env_spec)["kwargs"]
    assert (kwargs["pixels"], kwargs["image_size"], kwargs["camera"]) == (True, 24, "corner2")
    assert cli.main([*argv, "--camera", "corner3"]) == 0  # the flag overrides the store's camera
    assert json.loads(EvalResult.from_json(out.read_text()).env_spec)["kwargs"]["camera"] == "corner3"
    capsys.readouterr()
    assert cli.main([*argv, "--image-size", "32"]) == 2
    assert "--image-size 32: the checkpoint reads images of side {'pixels': 24}" in capsys.readouterr().err


def test_lerobot_data_commands_show_progress_per_episode(tmp_path, capsys):
    from ttfkit.data.lerobot import export_lerobot, import_lerobot

    store = _tiny_store(tmp_path / "s.zarr", n_episodes=3, length=5)
    calls = []
    export_lerobot(store, tmp_path / "lr", fps=10, on_episode=lambda done, total: calls.append((done, total)))
    import_lerobot(tmp_path / "lr", tmp_path / "back.zarr", on_episode=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)] * 2
    assert cli.main(["data", "export-lerobot", str(store), str(tmp_path / "lr2"), "--fps", "10"]) == 0
    err = capsys.readouterr().err
    assert "export-lerobot" in err and "3/3" in err, err


def test_ttf_help_builds_one_parser_tree_without_importing_torch():
    """Every subcommand is an argparse subparser, but only the one that runs is built: `ttf --help` and
    `ttf data info` import neither torch nor MuJoCo."""
    import subprocess
    import sys

    code = ("import sys, contextlib, io\nfrom ttfkit.scripts import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    cli.main(['--help'])\n"
            "    try:\n        cli.main(['data', 'info', '--help'])\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'mujoco', 'ttfkit.scripts.train') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
