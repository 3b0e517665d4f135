"""The lerobot_policy_ttfkit plugin inside real LeRobot 0.4.4: discovery, offline loading,
action parity with ttfkit, the missing-statistics guard, and fine-tuning with lerobot-train."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from lerobot.configs.policies import PreTrainedConfig
from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata
from lerobot.policies.factory import get_policy_class, make_policy, make_pre_post_processors
from lerobot.utils.import_utils import register_third_party_plugins
from safetensors.torch import load_file, save_file

from ttfkit.data.lerobot import export_lerobot
from ttfkit.policies import load

FEATURES = {"observation.state": "agent_pos", "observation.environment_state": "environment_state",
            "observation.image": "pixels"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, request):
    """{name: (ttfkit checkpoint dir, LeRobot policy dir)} for flow and diffusion, plus the store
    and its LeRobotDataset export."""
    from lerobot_policy_ttfkit.export_ttfkit import export_ttfkit_policy

    helpers = request.getfixturevalue("module_helpers")
    root = tmp_path_factory.mktemp("plugin")
    store = root / "demos.zarr"
    helpers.write_store(store, helpers.make_episodes(seed=3))
    out = {"store": store, "dataset": export_lerobot(store, root / "dataset", fps=10)}
    for name in ("flow", "diffusion"):
        extra = {"num_steps": 3} if name == "flow" else {"num_inference_steps": 3}
        helpers.make_checkpoint(store, root / f"{name}_ckpt", name=name, **extra)
        out[name] = (root / f"{name}_ckpt", export_ttfkit_policy(root / f"{name}_ckpt", root / f"{name}_lr"))
    return out


def _obs_batch(store_path, batch: int, n_obs_steps: int, seed: int):
    """Random windows of real store observations in dataset units: {key: (B, To, ...)}."""
    from ttfkit.data import ReplayBuffer

    buf = ReplayBuffer.open(store_path)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, buf.n_steps - n_obs_steps, batch)[:, None] + np.arange(n_obs_steps)
    obs = {"agent_pos": torch.from_numpy(buf["agent_pos"][:][idx]),
           "environment_state": torch.from_numpy(buf["environment_state"][:][idx])}
    obs["pixels"] = torch.from_numpy(buf["pixels"][:][idx]).permute(0, 1, 4, 2, 3).float() / 255.0
    return obs


def test_factory_finds_type_and_loads_export_offline(exported):
    register_third_party_plugins()
    from lerobot_policy_ttfkit import TtfkitConfig, TtfkitPolicy

    assert "ttfkit" in PreTrainedConfig.get_known_choices()
    assert get_policy_class("ttfkit") is TtfkitPolicy
    _, policy_dir = exported["flow"]
    names = sorted(p.name for p in policy_dir.iterdir())
    assert {"config.json", "model.safetensors", "policy_preprocessor.json",
            "policy_postprocessor.json"} <= set(names)
    assert json.loads((policy_dir / "config.json").read_text())["type"] == "ttfkit"
    cfg = PreTrainedConfig.from_pretrained(policy_dir)
    assert isinstance(cfg, TtfkitConfig) and cfg.policy == "flow"
    cfg.pretrained_path = policy_dir
    meta = LeRobotDatasetMetadata("local/dataset", root=exported["dataset"])
    policy = make_policy(cfg, ds_meta=meta)  # LeRobot's factory: from_pretrained on the directory
    assert isinstance(policy, TtfkitPolicy)
    ttfkit = load(exported["flow"][0])
    want = ttfkit.state_dict()  # weights and ttfkit's normaliser buffers
    got = policy.model.state_dict()
    assert sorted(got) == sorted(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["flow", "diffusion"])
def test_same_observations_and_noise_give_ttfkits_actions(exported, name):
    ckpt, policy_dir = exported[name]
    ttfkit = load(ckpt)
    policy = get_policy_class("ttfkit").from_pretrained(policy_dir)
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(policy_dir))
    cfg = ttfkit.config
    obs = _obs_batch(exported["store"], batch=5, n_obs_steps=cfg.n_obs_steps, seed=1)
    noise = torch.randn(5, cfg.horizon, cfg.action_dim, generator=torch.Generator().manual_seed(7))

    want = ttfkit.predict_action_chunk(obs, noise=noise,
                                       generator=torch.Generator().manual_seed(11))  # (B, H, Da)
    batch = pre({feature: obs[key] for feature, key in FEATURES.items()})
    chunk = policy.predict_action_chunk(batch, noise=noise, generator=torch.Generator().manual_seed(11))
    got = post(chunk)
    assert got.shape == want.shape == (5, cfg.horizon, cfg.action_dim)
    torch.testing.assert_close(got, want, rtol=0, atol=0)  # ttfkit's own arithmetic inside
    # Different noise must change the actions (the comparison above is not vacuous).
    other = post(policy.predict_action_chunk(batch, noise=torch.randn_like(noise)))
    assert (other - want).abs().max() > 1e-3

    # Closed loop: one env step at a time through select_action, same generator seeds.
    _same_seeded_actions(policy, pre, post, ttfkit, _obs_batch(exported["store"], batch=3, n_obs_steps=6, seed=2))


def _same_seeded_actions(policy, pre, post, reference, steps, reseed_global: bool = False) -> None:
    """Step the LeRobot policy and the ttfkit policy ``reference`` through the same windows, each with its own
    generator of seed 5; their actions must be equal. ``reseed_global``: torch's global RNG gets a different seed
    on each side before every step (the actions must not depend on it)."""
    reference.reset()
    policy.reset()
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for t in range(next(iter(steps.values())).shape[1]):
        step = {key: steps[key][:, t] for key in FEATURES.values()}
        env_step = {**step, "pixels": (step["pixels"].permute(0, 2, 3, 1) * 255).round().to(torch.uint8)}
        if reseed_global:
            torch.manual_seed(t)
        a_ttfkit = reference.select_action({k: v.numpy() for k, v in env_step.items()}, generator=g1)
        if reseed_global:
            torch.manual_seed(100 + t)
        a_lerobot = post(policy.select_action(pre({f: step[k] for f, k in FEATURES.items()}), generator=g2))
        torch.testing.assert_close(a_lerobot, a_ttfkit, rtol=0, atol=0)


def test_export_normalises_inside_and_refuses_double_normalisation(exported):
    from lerobot_policy_ttfkit import TtfkitConfig

    _, policy_dir = exported["flow"]
    config = json.loads((policy_dir / "config.json").read_text())
    assert set(config["normalization_mapping"].values()) == {"IDENTITY"}
    assert set(config["normalizer"]) == {"agent_pos", "environment_state", "pixels", "action"}
    with pytest.raises(ValueError, match="must be IDENTITY"):
        TtfkitConfig(normalizer=config["normalizer"])  # MIN_MAX defaults would normalise twice


def test_missing_statistic_is_an_error(exported, tmp_path):
    from lerobot_policy_ttfkit import TtfkitConfig, TtfkitPolicy, make_ttfkit_pre_post_processors

    _, policy_dir = exported["flow"]
    # A policy LeRobot's processors normalise (as --policy.type=ttfkit trains it): MIN_MAX defaults.
    exported_cfg = PreTrainedConfig.from_pretrained(policy_dir)
    cfg = TtfkitConfig(policy="flow", device="cpu", input_features=exported_cfg.input_features,
                       output_features=exported_cfg.output_features,
                       policy_config=exported_cfg.policy_config, horizon=exported_cfg.horizon,
                       n_obs_steps=exported_cfg.n_obs_steps, n_action_steps=exported_cfg.n_action_steps)
    stats = LeRobotDatasetMetadata("local/dataset", root=exported["dataset"]).stats
    make_ttfkit_pre_post_processors(cfg, dataset_stats=stats)  # complete: fine
    partial = {k: v for k, v in stats.items() if k != "observation.environment_state"}
    with pytest.raises(KeyError, match="observation.environment_state"):
        make_ttfkit_pre_post_processors(cfg, dataset_stats=partial)
    with pytest.raises(KeyError, match="observation.environment_state"):
        TtfkitPolicy(cfg, dataset_stats=partial)
    no_max = {**stats, "action": {k: v for k, v in stats["action"].items() if k != "max"}}
    with pytest.raises(KeyError, match="action"):
        make_ttfkit_pre_post_processors(cfg, dataset_stats=no_max)
    # No statistics at all (LeRobot's "fill in later"): buildable, but the policy will not act.
    blank = TtfkitPolicy(cfg)
    with pytest.raises(RuntimeError, match="no normalisation statistics"):
        blank.select_action(pre_step(cfg))
    blank.save_pretrained(tmp_path / "blank")
    with pytest.raises(RuntimeError, match="no normalisation statistics"):
        TtfkitPolicy.from_pretrained(tmp_path / "blank").select_action(pre_step(cfg))

    # A saved pipeline whose normaliser lost a key: loading the policy refuses it.
    broken = tmp_path / "broken"
    TtfkitPolicy(cfg, dataset_stats=stats).save_pretrained(broken)
    TtfkitPolicy.from_pretrained(broken).select_action(pre_step(cfg))  # complete: acts
    step = next(s for s in json.loads((broken / "policy_preprocessor.json").read_text())["steps"]
                if s["registry_name"] == "normalizer_processor")
    tensors = load_file(broken / step["state_file"])
    save_file({k: v for k, v in tensors.items() if not k.startswith("observation.state.")},
              broken / step["state_file"])
    with pytest.raises(KeyError, match="observation.state"):
        TtfkitPolicy.from_pretrained(broken)


def pre_step(cfg) -> dict[str, torch.Tensor]:
    """One batch-of-1 step of zeros for every input feature of ``cfg``."""
    return {f: torch.zeros(1, *ft.shape) for f, ft in cfg.input_features.items()}


def test_lerobot_train_fine_tunes_the_exported_policy(exported, tmp_path):
    _, policy_dir = exported["flow"]
    out = tmp_path / "train"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "lerobot.scripts.lerobot_train", f"--policy.path={policy_dir}",
           "--policy.push_to_hub=false", "--policy.device=cpu", "--dataset.repo_id=local/dataset",
           f"--dataset.root={exported['dataset']}", "--steps=4", "--batch_size=4",
           "--num_workers=0", "--eval_freq=0", "--save_freq=4", "--log_freq=1",
           "--wandb.enable=false", f"--output_dir={out}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tuned_dir = out / "checkpoints" / "last" / "pretrained_model"
    tuned = get_policy_class("ttfkit").from_pretrained(tuned_dir)
    before = get_policy_class("ttfkit").from_pretrained(policy_dir)
    moved = [k for k, v in before.state_dict().items()
             if not torch.equal(v, tuned.state_dict()[k])]
    assert moved, "lerobot-train changed no weight"
    assert "loss:" in proc.stdout + proc.stderr


def test_ttf_export_lerobot_cli(exported, tmp_path, capsys):
    from ttfkit.scripts.cli import main

    ckpt, reference = exported["flow"]
    out = tmp_path / "cli_export"
    assert main(["export", "lerobot", "--policy", str(ckpt), "--out", str(out)]) == 0
    assert f"--policy.path={out}" in capsys.readouterr().out
    for name in ("config.json", "policy_preprocessor.json", "policy_postprocessor.json"):
        assert (out / name).read_text() == (reference / name).read_text(), name
    want, got = load_file(reference / "model.safetensors"), load_file(out / "model.safetensors")
    assert sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)
    with pytest.raises(FileExistsError, match="cli_export"):
        main(["export", "lerobot", "--policy", str(ckpt), "--out", str(out), "--debug"])


def test_aligned_export_acts_like_ttfkits_aligned_policy(exported, tmp_path):
    from ttfkit.align import make_reward
    from ttfkit.align.policy import AlignConfig, AlignedPolicy
    from ttfkit.scripts.cli import main

    ckpt, _ = exported["flow"]
    out = tmp_path / "aligned"
    assert main(["export", "lerobot", "--policy", str(ckpt), "--out", str(out), "--align", "best-of-n",
                 "--reward", "smoothness", "--reward-option", "scale=2.0", "--particles", "4"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["align"]["method"] == "best-of-n" and config["align"]["particles"] == 4
    assert set(config["normalization_mapping"].values()) == {"IDENTITY"}
    policy = get_policy_class("ttfkit").from_pretrained(out)
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(out))
    reference = AlignedPolicy(load(ckpt), make_reward("smoothness", scale=2.0),
                              AlignConfig(method="best-of-n", particles=4))
    _same_aligned_actions(policy, pre, post, reference, _obs_batch(exported["store"], batch=2, n_obs_steps=5, seed=4))
    n_steps = load(ckpt).config.num_steps
    assert policy.aligned.summary()["nfe_per_chunk"] == 4 * n_steps  # best-of-4 really ran


@pytest.mark.parametrize("method", ["best-of-n", "weighted"])
def test_critic_aligned_export_carries_the_critic_and_acts_like_ttfkit(exported, tmp_path, method):
    from ttfkit.align.critic import ChunkCritic, CriticReward, policy_fingerprint, save_critic
    from ttfkit.align.policy import AlignConfig, AlignedPolicy
    from ttfkit.scripts.cli import main

    ckpt, _ = exported["flow"]
    source = load(ckpt)
    torch.manual_seed(0)
    critic = ChunkCritic(source.encoder.out_dim, source.config.horizon, source.config.action_dim, hidden=16, members=2)
    critic.meta.update(policy_fingerprint=policy_fingerprint(source), env_id="ttfkit/metaworld-reach-v3")
    save_critic(critic, tmp_path / "critic")
    out = tmp_path / "aligned_critic"
    assert main(["export", "lerobot", "--policy", str(ckpt), "--out", str(out), "--align", method,
                 "--reward", "critic", "--critic", str(tmp_path / "critic"), "--particles", "4"]) == 0
    weights = load_file(out / "model.safetensors")
    for k, v in critic.state_dict().items():  # the verifier's weights travel in model.safetensors
        assert torch.equal(weights[f"critic.{k}"], v)
    policy = get_policy_class("ttfkit").from_pretrained(out)
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(out))
    reference = AlignedPolicy(source, CriticReward(critic, source), AlignConfig(method=method, particles=4))
    _same_aligned_actions(policy, pre, post, reference, _obs_batch(exported["store"], batch=2, n_obs_steps=4, seed=5))
    if method == "weighted":  # the guided ODE with renoised, flow-map-jumped candidates really ran
        n = source.config.num_steps
        assert policy.aligned.summary()["nfe_per_chunk"] == n + (n - 1) * 4 * (2 + 2)
        return
    # a critic fitted for another policy is refused, naming both
    critic.meta["policy_fingerprint"] = "0123456789abcdef"
    save_critic(critic, tmp_path / "other")
    with pytest.raises(ValueError, match="fitted for policy 0123456789abcdef"):
        main(["export", "lerobot", "--policy", str(ckpt), "--out", str(tmp_path / "x"), "--align", "best-of-n",
              "--reward", "critic", "--critic", str(tmp_path / "other"), "--debug"])


def _same_aligned_actions(policy, pre, post, reference, steps) -> None:
    """Step the LeRobot policy and ttfkit's AlignedPolicy through the same windows with the same global
    RNG state; their actions must agree."""
    policy.reset()
    reference.reset()
    for t in range(next(iter(steps.values())).shape[1]):
        step = {key: steps[key][:, t] for key in FEATURES.values()}
        env_step = {k: v.numpy() for k, v in step.items()}
        env_step["pixels"] = (step["pixels"].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
        with torch.random.fork_rng():
            torch.manual_seed(t)
            want = reference.select_action(env_step)
        with torch.random.fork_rng():
            torch.manual_seed(t)
            got = post(policy.select_action(pre({f: step[k] for f, k in FEATURES.items()})))
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def diamond_dir(exported, tmp_path_factory):
    """A `ttf distill`-format directory: a Diamond Map of the flow checkpoint (its teacher saved beside it), with
    every weight moved off its initialisation (the zero-initialised layer included, so x_0 and x_t matter)."""
    from ttfkit.align.policy_diamond import policy_diamond, save_diamond

    teacher = load(exported["flow"][0])
    dmap = policy_diamond(teacher)
    with torch.no_grad():
        for i, p in enumerate(dmap.parameters()):
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(100 + i)))
    return save_diamond(dmap, tmp_path_factory.mktemp("diamond") / "dm", teacher=teacher,
                        metadata={"steps": 0})


def test_one_step_export_carries_the_map_and_acts_like_ttfkits_one_step_policy(exported, diamond_dir, tmp_path):
    from ttfkit.align.one_step import OneStepPolicy
    from ttfkit.align.policy_diamond import load_diamond
    from ttfkit.scripts.cli import main

    ckpt, plain_dir = exported["flow"]
    out = tmp_path / "one_step"
    assert main(["export", "lerobot", "--checkpoint", str(ckpt), "--out", str(out), "--diamond", str(diamond_dir)]) == 0
    dmap, _ = load_diamond(diamond_dir)
    weights, plain = load_file(out / "model.safetensors"), load_file(plain_dir / "model.safetensors")
    for k, v in dmap.state_dict().items():  # the map's weights travel in model.safetensors, beside the teacher's
        assert torch.equal(weights[f"model.dmap.{k}"], v), k
    assert {k for k in weights if not k.startswith("model.dmap.")} == set(plain)
    config = json.loads((out / "config.json").read_text())
    assert config["diamond"]["phi"] == {"type": "policy", "time_dim": 32, "xbar_input": True} and not config["align"]
    # The map's own teacher/ directory exports the same policy.
    assert main(["export", "lerobot", "--checkpoint", str(diamond_dir / "teacher"), "--out", str(tmp_path / "t"),
                 "--diamond", str(diamond_dir)]) == 0
    again = load_file(tmp_path / "t" / "model.safetensors")
    assert sorted(again) == sorted(weights) and all(torch.equal(again[k], weights[k]) for k in weights)

    cfg = PreTrainedConfig.from_pretrained(out)
    cfg.pretrained_path = out
    policy = make_policy(cfg, ds_meta=LeRobotDatasetMetadata("local/dataset", root=exported["dataset"]))  # factory
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(out))
    reference = OneStepPolicy(load(ckpt), dmap)
    pc = reference.config
    obs = _obs_batch(exported["store"], batch=5, n_obs_steps=pc.n_obs_steps, seed=1)
    noise = torch.randn(5, pc.horizon, pc.action_dim, generator=torch.Generator().manual_seed(7))
    want = reference.predict_action_chunk(obs, noise=noise, generator=torch.Generator().manual_seed(11))
    batch = pre({feature: obs[key] for feature, key in FEATURES.items()})
    got = post(policy.predict_action_chunk(batch, noise=noise, generator=torch.Generator().manual_seed(11)))
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    # Not vacuous: the chunk is the map's, not the teacher's ODE, and the map's x_0 draw matters.
    flow = load(ckpt).predict_action_chunk(obs, noise=noise)
    assert (flow - want).abs().max() > 1e-3
    other_x0 = post(policy.predict_action_chunk(batch, noise=noise, generator=torch.Generator().manual_seed(12)))
    assert (other_x0 - want).abs().max() > 1e-4

    # Closed loop, one env (LeRobot's select_action draws a batch's noise at once, ttfkit's row by row):
    # select_action with the same generator seeds, torch's global RNG differing.
    steps = _obs_batch(exported["store"], batch=1, n_obs_steps=6, seed=2)
    _same_seeded_actions(policy, pre, post, reference, steps, reseed_global=True)
    with pytest.raises(RuntimeError, match="cannot be fine-tuned"):
        policy.forward({**batch, "action": torch.zeros(5, pc.horizon, pc.action_dim)})


@pytest.mark.parametrize("method", ["smc", "guidance"])
def test_diamond_posterior_export_acts_like_ttfkits_aligned_policy(exported, diamond_dir, tmp_path, method):
    from ttfkit.align import make_reward
    from ttfkit.align.diamond import DiamondMap
    from ttfkit.align.policy import AlignConfig, AlignedPolicy
    from ttfkit.align.policy_diamond import load_diamond
    from ttfkit.scripts.cli import main

    ckpt, _ = exported["flow"]
    out = tmp_path / "aligned_diamond"
    assert main(["export", "lerobot", "--checkpoint", str(ckpt), "--out", str(out), "--align", method,
                 "--reward", "smoothness", "--particles", "4", "--diamond", str(diamond_dir)]) == 0
    dmap, _ = load_diamond(diamond_dir)
    weights = load_file(out / "model.safetensors")
    for k, v in dmap.state_dict().items():
        assert torch.equal(weights[f"diamond.{k}"], v), k
    policy = get_policy_class("ttfkit").from_pretrained(out)
    assert isinstance(policy.aligned.posterior, DiamondMap)
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(out))
    reward, config = make_reward("smoothness"), AlignConfig(method=method, particles=4)
    reference = AlignedPolicy(load(ckpt), reward, config, posterior=dmap)
    steps = _obs_batch(exported["store"], batch=2, n_obs_steps=4, seed=4)
    _same_aligned_actions(policy, pre, post, reference, steps)
    # The map, not GLASS, is the posterior: one call per transition and per value sample. SMC with K steps,
    # N particles and M value samples costs (K-1)·N·(1+M) + N rows; guidance, one teacher call per Euler step
    # plus M map calls at every step but the first (t = 0, where the guidance term vanishes).
    k, n, m, ode = config.smc_steps, config.particles, config.value_samples, load(ckpt).config.num_steps
    want_nfe = (k - 1) * n * (1 + m) + n if method == "smc" else ode + (ode - 1) * m
    assert policy.aligned.summary()["nfe_per_chunk"] == want_nfe
    glass = AlignedPolicy(load(ckpt), reward, config)  # GLASS posterior: other actions
    with pytest.raises(AssertionError):
        _same_aligned_actions(policy, pre, post, glass, steps)


def test_diamond_export_refuses_other_policies_and_unused_maps(exported, diamond_dir, tmp_path):
    from ttfkit.scripts.cli import main

    ckpt, _ = exported["flow"]
    other = tmp_path / "other_ckpt"
    helpers_ckpt = load(ckpt)
    with torch.no_grad():
        next(helpers_ckpt.parameters()).add_(1.0)
    helpers_ckpt.save(other)
    with pytest.raises(ValueError, match="distilled from policy .* not from .*other_ckpt"):
        main(["export", "lerobot", "--checkpoint", str(other), "--out", str(tmp_path / "x"),
              "--diamond", str(diamond_dir), "--debug"])
    with pytest.raises(ValueError, match="best-of-n does not use a Diamond Map"):
        main(["export", "lerobot", "--checkpoint", str(ckpt), "--out", str(tmp_path / "x"), "--align", "best-of-n",
              "--reward", "smoothness", "--diamond", str(diamond_dir), "--debug"])
    with pytest.raises(ValueError, match="Diamond Map needs a flow policy"):
        main(["export", "lerobot", "--checkpoint", str(exported["diffusion"][0]), "--out", str(tmp_path / "x"),
              "--diamond", str(diamond_dir), "--debug"])
    assert not (tmp_path / "x").exists()
    # The config itself refuses a map its policy would not use.
    from lerobot_policy_ttfkit import TtfkitConfig

    spec = {"config": {}, "phi": {"type": "policy", "time_dim": 32}}
    with pytest.raises(ValueError, match="diamond needs a flow policy"):
        TtfkitConfig(policy="diffusion", diamond=spec)
    with pytest.raises(ValueError, match="method='best-of-n'"):
        TtfkitConfig(diamond=spec, align={"method": "best-of-n", "reward": "smoothness"})


def test_bench_export_diamond_times_both_exports(diamond_dir, tmp_path):
    from ttfkit.scripts.bench_export_diamond import main

    out = tmp_path / "latency.jsonl"
    assert main(["run", "--diamond", str(diamond_dir), "--repeats", "3", "--warmup", "0", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    cases = {line["case"]: line for line in lines if "case" in line}
    assert {"lerobot-flow-euler-3", "lerobot-one-step", "ttfkit-flow-euler-3", "ttfkit-one-step"} <= set(cases)
    assert all(len(c["times_ms"]) == 3 and c["min_ms"] <= c["median_ms"] <= c["max_ms"] for c in cases.values())
    ratio = next(line for line in lines if line.get("ratio", "").startswith("lerobot:"))
    want = cases["lerobot-flow-euler-3"]["median_ms"] / cases["lerobot-one-step"]["median_ms"]
    assert ratio["ratio_of_medians"] == pytest.approx(want)
    assert main(["plot", str(out), "--out", str(tmp_path / "latency.png")]) == 0
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_step_export_in_lerobots_rollout_matches_ttfkits_evaluator(tmp_path, helpers):
    """Both exports (flow, one-step) of a Diamond Map on a real Meta-World env: LeRobot's own rollout loop and
    ttfkit's evaluator play the same episodes (lengths, successes, returns) from generators seeded alike."""
    from ttfkit.align.policy_diamond import policy_diamond, save_diamond
    from ttfkit.scripts.bench_export_diamond import main

    env = "ttfkit/metaworld-reach-v3"
    policy = helpers.make_env_policy(env, tmp_path / "demos.zarr").eval()
    dmap = policy_diamond(policy)
    with torch.no_grad():
        for i, p in enumerate(dmap.parameters()):
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(i)))
    save_diamond(dmap, tmp_path / "dm", teacher=policy)
    out = tmp_path / "closed_loop.jsonl"
    assert main(["closed-loop", "--diamond", str(tmp_path / "dm"), "--env", env, "--episodes", "1",
                 "--max-steps", "12", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["case"] for line in lines] == ["flow-euler-2", "one-step"]
    for line in lines:  # returns agree up to the order of the float64 sum
        assert line["episodes_identical"] == 1 and line["max_return_diff"] < 1e-9, line
        assert line["lerobot_lengths"] == line["ttfkit_lengths"] == [12]
    assert lines[0]["lerobot_returns"] != lines[1]["lerobot_returns"]  # the one-step export's are its own
