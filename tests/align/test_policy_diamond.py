"""Diamond Maps on flow policies: backbone reuse starts at the teacher's GLASS velocity; distillation
lowers the loss; checkpoint round trip; `ttf distill` end to end on a tiny real zarr store."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ttfkit.align import glass
from ttfkit.align.diamond import DiamondConfig, distillation_loss
import json

from ttfkit.align.one_step import OneStepPolicy
from ttfkit.align.policy_diamond import (
    Distiller,
    PolicyPhi,
    distill_policy,
    load_diamond,
    policy_diamond,
    save_diamond,
)
from ttfkit.data import Normalizer, ReplayBuffer, SequenceDataset
from ttfkit.policies import make_policy

H, DA = 8, 2


def _store(path):
    rng = np.random.default_rng(0)
    buf = ReplayBuffer.create(path)
    for _ in range(4):
        pos = np.cumsum(rng.normal(scale=0.1, size=(20, 3)), 0).astype(np.float32)
        env = np.repeat(rng.uniform(-1, 1, size=(1, 2)), 20, 0).astype(np.float32)
        buf.add_episode({"agent_pos": pos, "environment_state": env,
                         "action": np.tanh(pos[:, :DA] + env).astype(np.float32)})
    return path


@pytest.fixture
def policy_and_data(tmp_path):
    path = _store(tmp_path / "tiny.zarr")
    norm = Normalizer.fit(path, ["agent_pos", "environment_state", "action"])
    torch.manual_seed(0)
    policy = make_policy("flow", normalizer=norm, obs_shapes={"agent_pos": (3,), "environment_state": (2,)},
                         action_dim=DA, horizon=H, n_obs_steps=2, n_action_steps=4,
                         backbone_options={"hidden_dim": 32, "n_blocks": 1})
    ds = SequenceDataset(path, horizon=H, n_obs_steps=2, n_action_steps=4)
    return policy.eval(), ds, path


def test_policy_phi_starts_at_the_teacher_glass_velocity(policy_and_data):
    policy, ds, _ = policy_and_data
    batch = next(iter(DataLoader(ds, batch_size=6)))
    with torch.no_grad():
        cond = policy.encode_obs(batch["obs"])
        g = torch.Generator().manual_seed(0)
        x_t, xbar = torch.randn(6, H, DA, generator=g), torch.randn(6, H, DA, generator=g)
        t, s, sn = torch.rand(6, generator=g), torch.rand(6, generator=g) * 0.5, torch.full((6,), 0.9)
        dmap = policy_diamond(policy)
        torch.testing.assert_close(dmap.phi(t, s, s, x_t, xbar, cond),
                                   glass.posterior_velocity(policy, t, x_t, s, xbar, cond))
        # the zero-initialised layer makes x_t and s' invisible until training moves it
        torch.testing.assert_close(dmap.phi(t, s, sn, x_t, xbar, cond), dmap.phi(t, s, s, x_t, xbar, cond))
    assert isinstance(dmap.net, PolicyPhi)
    assert all(p.requires_grad for p in dmap.parameters())
    assert dmap.net.backbone is not policy.backbone


def test_distillation_lowers_the_loss_and_round_trips(policy_and_data, tmp_path):
    # The Lagrangian (jvp) loss is heavy-tailed on a random teacher, so the check fits one fixed batch:
    # training through distill_policy must lower the loss on it (evaluated with fixed noise).
    policy, ds, _ = policy_and_data
    batch = next(iter(DataLoader(ds, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))))
    with torch.no_grad():
        cond, x1 = policy.encode_obs(batch["obs"]), policy._normalize("action", batch["action"])

    def eval_loss(dm):
        with torch.no_grad():
            return float(distillation_loss(dm, policy, x1, cond, generator=torch.Generator().manual_seed(1))[0])

    start = policy_diamond(policy, DiamondConfig(diag_fraction=0.0))
    before = eval_loss(start)
    dmap = distill_policy(policy, [batch] * 60, steps=60, lr=1e-3, dmap=start,
                          generator=torch.Generator().manual_seed(2))
    assert eval_loss(dmap) < 0.95 * before
    save_diamond(dmap, tmp_path / "dm", teacher=policy, metadata={"note": "test"})
    loaded, teacher = load_diamond(tmp_path / "dm")
    e = torch.randn(4, H, DA, generator=torch.Generator().manual_seed(3))
    x_t = torch.randn(4, H, DA, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(loaded(0.5, 0.01, 0.99, x_t, e, cond[:4]), dmap(0.5, 0.01, 0.99, x_t, e, cond[:4]))
        torch.testing.assert_close(teacher.velocity(torch.full((4,), 0.3), x_t, cond[:4]),
                                   policy.velocity(torch.full((4,), 0.3), x_t, cond[:4]))
    with pytest.raises(ValueError, match="teacher"):
        save_diamond(dmap, tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_diamond(tmp_path / "missing")


def test_ttf_distill_cli(policy_and_data, tmp_path, capsys):
    from ttfkit.scripts.cli import main

    policy, _, store = policy_and_data
    policy.save(tmp_path / "ckpt")
    common = ["distill", "--policy", str(tmp_path / "ckpt"), "--dataset", str(store), "--out", str(tmp_path / "dm"),
              "--batch", "16", "--eval-every", "2", "--check-pairs", "2", "--check-samples", "8", "--no-progress",
              "--trajectory-fraction", "0.25", "--trajectory-steps", "2"]
    assert main(common + ["--steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "step      4" in out and "glass2" in out and "wrote" in out
    assert (tmp_path / "dm" / "curve.png").is_file()
    rows = (tmp_path / "dm" / "curve.csv").read_text().splitlines()[1:4]
    assert [line.split(",")[0] for line in rows] == ["0", "2", "4"]
    dmap, teacher = load_diamond(tmp_path / "dm")
    assert isinstance(dmap.net, PolicyPhi) and teacher.config.horizon == H
    assert json.loads((tmp_path / "dm" / "config.json").read_text())["metadata"]["step"] == 4
    # --resume continues at step 4 (only steps 5-6 run) and appends to the curve
    assert main(common + ["--steps", "6", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resumed" in out and "step      6" in out and "step      2" not in out
    assert json.loads((tmp_path / "dm" / "config.json").read_text())["metadata"]["step"] == 6
    # --ema: the checkpoint holds the average, the curve also tracks the trained map
    assert main(common[:6] + [str(tmp_path / "dm_ema")] + common[7:] + ["--steps", "4", "--ema", "0.5"]) == 0
    header = (tmp_path / "dm_ema" / "curve.csv").read_text().splitlines()[0].split(",")
    assert "t0.3" in header and "trained_t0.3" in header
    assert json.loads((tmp_path / "dm_ema" / "config.json").read_text())["metadata"]["ema"] == 0.5
    # resuming without the EMA it was written with names the state file and both settings, and trains nothing
    capsys.readouterr()
    assert main(common[:6] + [str(tmp_path / "dm_ema")] + common[7:] + ["--steps", "6", "--resume", "--ema", "0"]) == 2
    err = capsys.readouterr().err
    assert f"ttf distill: error: {tmp_path / 'dm_ema' / 'training_state.pt'}" in err
    assert "written with an EMA" in err and "--ema 0.0" in err and "Traceback" not in err
    assert json.loads((tmp_path / "dm_ema" / "config.json").read_text())["metadata"]["step"] == 4
    # --max-minutes: a budget spent by the first step stops there, with the last step checked, saved and plotted
    capsys.readouterr()
    timed = common[:6] + [str(tmp_path / "dm_timed")] + common[7:]
    assert main(timed + ["--steps", "6", "--max-minutes", "1e-9"]) == 0
    out = capsys.readouterr().out
    assert "held-out energy distance at step 1:" in out and "(stopped at --max-minutes 1e-09)" in out
    assert json.loads((tmp_path / "dm_timed" / "config.json").read_text())["metadata"]["step"] == 1
    rows = (tmp_path / "dm_timed" / "curve.csv").read_text().splitlines()[1:3]
    assert [line.split(",")[0] for line in rows] == ["0", "1"] and (tmp_path / "dm_timed" / "curve.png").is_file()
    assert main(timed + ["--steps", "2", "--resume"]) == 0  # and --resume continues it
    assert json.loads((tmp_path / "dm_timed" / "config.json").read_text())["metadata"]["step"] == 2
    capsys.readouterr()
    assert main(timed + ["--max-minutes", "-1"]) == 2 and "--max-minutes must be >= 0" in capsys.readouterr().err
    assert main(["distill", "--policy", str(tmp_path / "nope"), "--dataset", str(store), "--out",
                 str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "ttf distill: error: " in err and "nope" in err and "Traceback" not in err


def _batches(ds, n):
    return [next(iter(DataLoader(ds, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(i))))
            for i in range(n)]


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_distiller_resumes_exactly(policy_and_data, ema):
    # As `ttf distill --resume`: the new Distiller is built on the checkpoint's weights (the sampler's: the average
    # with ema) and the training state restores the rest; both maps must match an uninterrupted run.
    policy, ds, _ = policy_and_data
    batches = _batches(ds, 6)
    cfg = DiamondConfig(diag_fraction=0.5, trajectory_fraction=0.25, trajectory_steps=2)

    def fresh():
        torch.manual_seed(0)
        dm = policy_diamond(policy, cfg)
        return dm, Distiller(policy, dm, steps=10, lr=1e-3, warmup=2, ema=ema,
                             generator=torch.Generator().manual_seed(5))

    dm_a, run_a = fresh()
    for b in batches:
        run_a.train_step(b)
    dm_b, run_b = fresh()
    for b in batches[:3]:
        run_b.train_step(b)
    state, weights = run_b.state_dict(), {k: v.clone() for k, v in run_b.sampler.state_dict().items()}
    torch.manual_seed(0)
    dm_c = policy_diamond(policy, cfg)
    dm_c.load_state_dict(weights)
    run_c = Distiller(policy, dm_c, steps=10, lr=1e-3, warmup=2, ema=ema, generator=torch.Generator().manual_seed(5))
    run_c.load_state_dict(state)
    for b in batches[3:]:
        run_c.train_step(b)
    assert run_c.step == 6
    for mine, ref in ((run_c.dmap, run_a.dmap), (run_c.sampler, run_a.sampler)):
        for k, v in ref.state_dict().items():
            torch.testing.assert_close(mine.state_dict()[k], v)
    if ema:
        with pytest.raises(ValueError, match="ema"):
            Distiller(policy, policy_diamond(policy, cfg), steps=10).load_state_dict(state)


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_distiller_learning_rate_schedules(policy_and_data, schedule):
    # Closed form with lr 1e-3, 2 warm-up steps of 5: after step k the factor is (k+1)/2 while k < 2, then
    # 0.5·(1 + cos(pi·(k-2)/3)) (cosine) or 1 (constant).
    import math

    policy, ds, _ = policy_and_data
    run = Distiller(policy, policy_diamond(policy, DiamondConfig(diag_fraction=1.0)), steps=5, lr=1e-3, warmup=2,
                    schedule=schedule)
    got = []
    for b in _batches(ds, 4):
        run.train_step(b)
        got.append(run.opt.param_groups[0]["lr"])
    cosine = [1.0] + [0.5 * (1 + math.cos(math.pi * (k - 2) / 3)) for k in (2, 3, 4)]
    want = cosine if schedule == "cosine" else [1.0] * 4
    assert got == pytest.approx([1e-3 * f for f in want])
    with pytest.raises(ValueError, match="schedule"):
        Distiller(policy, policy_diamond(policy), steps=5, schedule="linear")


def test_distiller_ema_is_the_exponential_average_of_the_trained_weights(policy_and_data):
    # Reference written here: the first update copies the weights, then e <- d·e + (1-d)·w after every step.
    # (Not the diagonal loss alone: it is exactly zero at the teacher-initialised map, so nothing would move.)
    policy, ds, _ = policy_and_data
    decay = 0.8
    torch.manual_seed(0)
    cfg = DiamondConfig(diag_fraction=0.5, trajectory_fraction=0.5, trajectory_steps=2)
    run = Distiller(policy, policy_diamond(policy, cfg), steps=10, lr=1e-2, ema=decay,
                    generator=torch.Generator().manual_seed(1))
    ref = None
    for b in _batches(ds, 4):
        run.train_step(b)
        w = {k: v.clone() for k, v in run.dmap.state_dict().items()}
        ref = w if ref is None else {k: decay * ref[k] + (1 - decay) * w[k] for k in w}
    got = run.sampler.state_dict()
    assert run.sampler is not run.dmap
    assert any(not torch.allclose(got[k], run.dmap.state_dict()[k]) for k in got)  # the average lags the weights
    for k, v in ref.items():
        torch.testing.assert_close(got[k], v)
    assert not any(p.requires_grad for p in run.sampler.parameters())
    with pytest.raises(ValueError, match="ema decay"):
        Distiller(policy, policy_diamond(policy), steps=10, ema=1.0)


def test_one_step_policy_is_one_map_call_at_t0(policy_and_data):
    # Untrained map (zero-initialised layer): one call from e at t = 0 is one Euler step of the teacher's flow from
    # s_min to s_max, divided by s_max. Computed here from the teacher's velocity, independently of the map code.
    policy, ds, _ = policy_and_data
    dmap = policy_diamond(policy)
    one = OneStepPolicy(policy, dmap)
    batch = next(iter(DataLoader(ds, batch_size=5)))
    e = torch.randn(5, H, DA, generator=torch.Generator().manual_seed(7))
    chunk = one.predict_action_chunk(batch["obs"], noise=e)
    s0, s1 = dmap.config.s_min, dmap.config.s_max
    with torch.no_grad():
        cond = policy.encode_obs(batch["obs"])
        z_hat = e + (1 - s0) * policy.velocity(torch.full((5,), s0), e, cond)
        ref = (e + (s1 - s0) / (1 - s0) * (z_hat - e)) / s1
    torch.testing.assert_close(chunk, policy._unnormalize("action", ref), atol=1e-5, rtol=1e-5)
    assert one.select_action({k: v[:, -1].numpy() for k, v in batch["obs"].items()}).shape == (5, DA)
    with pytest.raises(ValueError, match="FlowPolicy"):
        OneStepPolicy(object(), dmap)


@pytest.mark.parametrize("xbar_input", [True, False])
def test_one_step_policy_folded_call_equals_the_map(policy_and_data, xbar_input):
    # The deployed one-step call folds the fixed time inputs, the zero-initialised layer and the backbone's input and
    # output layers into two layers; with trained-like (non-zero) weights it must equal the generic map call, and
    # follow every weight it is built from when that weight changes.
    from ttfkit.align.one_step import one_step_sample

    policy, ds, _ = policy_and_data
    torch.manual_seed(3)
    dmap = policy_diamond(policy, xbar_input=xbar_input)
    one = OneStepPolicy(policy, dmap)
    batch = next(iter(DataLoader(ds, batch_size=8)))
    e = torch.randn(8, H, DA, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        cond = policy.encode_obs(batch["obs"])
        mlp = dmap.net.backbone
        for p in (*dmap.net.extra.parameters(), *mlp.time_mlp.parameters(), *mlp.in_proj.parameters(),
                  *mlp.out_proj.parameters()):  # one at a time: the folded weights must follow each
            p.add_(torch.randn_like(p), alpha=0.05)
            fused = one._sample(cond, e, torch.Generator().manual_seed(2))
            generic = one_step_sample(dmap, cond, noise=e, generator=torch.Generator().manual_seed(2))
            torch.testing.assert_close(fused, generic, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(fused, one_step_sample(policy_diamond(policy, xbar_input=xbar_input), cond, noise=e,
                                                     generator=torch.Generator().manual_seed(2)))


def test_one_step_policy_on_other_backbones_calls_the_map(policy_and_data):
    # Only the MLP backbone has a folded call; a transformer teacher's one-step policy is exactly the generic call.
    from ttfkit.align.one_step import one_step_sample

    _, ds, path = policy_and_data
    torch.manual_seed(4)
    teacher = make_policy("flow", normalizer=Normalizer.fit(path, ["agent_pos", "environment_state", "action"]),
                          obs_shapes={"agent_pos": (3,), "environment_state": (2,)}, action_dim=DA, horizon=H,
                          n_obs_steps=2, n_action_steps=4, backbone="transformer",
                          backbone_options={"d_model": 16, "n_layers": 1, "n_heads": 2}).eval()
    dmap = policy_diamond(teacher)
    with torch.no_grad():
        dmap.net.extra.weight.normal_(std=0.05)
    one = OneStepPolicy(teacher, dmap)
    obs = next(iter(DataLoader(ds, batch_size=3)))["obs"]
    e = torch.randn(3, H, DA, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = one_step_sample(dmap, teacher.encode_obs(obs), noise=e, generator=torch.Generator().manual_seed(2))
        got = one._sample(teacher.encode_obs(obs), e, torch.Generator().manual_seed(2))
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_latency_bench_references_compute_what_they_replace(policy_and_data, tmp_path, capsys):
    # bench_diamond's time-folded k-step reference must give the k-step policy's chunks (else its ratio means
    # nothing), and a latency run on a saved map reports every case and ratio.
    import argparse
    import dataclasses

    from ttfkit.scripts import bench_diamond

    policy, ds, _ = policy_and_data
    obs = next(iter(DataLoader(ds, batch_size=3)))["obs"]
    e = torch.randn(3, H, DA, generator=torch.Generator().manual_seed(1))
    folded = type(policy)(policy.config, normalizer=policy.normalizer)
    folded.load_state_dict(policy.state_dict())
    folded = bench_diamond._time_folded(folded.eval())
    with torch.no_grad():
        torch.testing.assert_close(folded.predict_action_chunk(obs, noise=e), policy.predict_action_chunk(obs, noise=e),
                                   atol=1e-5, rtol=1e-5)
    policy.config = dataclasses.replace(policy.config, num_steps=3)
    save_diamond(policy_diamond(policy), tmp_path / "dm", teacher=policy)
    bench_diamond._latency(argparse.Namespace(diamond=str(tmp_path / "dm"), repeats=4, block=2))  # main() would
    # set torch's thread count for the rest of the session
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["case"] for r in rows if "case" in r} == {"flow-euler-3", "flow-euler-1", "diamond-one-step",
                                                       "diamond-one-step-unfolded", "flow-euler-3-time-folded"}
    assert all(rows[-1][k] > 0 for k in ("speedup_one_step_vs_flow", "speedup_one_step_vs_time_folded_flow"))
    per_round = rows[-1]["speedup_per_round"]
    assert per_round["rounds"] == 2 and per_round["min"] <= per_round["median"] <= per_round["max"]


def test_checkpoints_without_the_xbar_input_still_load(policy_and_data, tmp_path):
    policy, _, _ = policy_and_data
    old = policy_diamond(policy, xbar_input=False)
    save_diamond(old, tmp_path / "old", teacher=policy, extra_files={"note.txt": b"kept"})
    cfg_file = tmp_path / "old" / "config.json"
    config = json.loads(cfg_file.read_text())
    del config["phi"]["xbar_input"]  # as written before the option existed
    cfg_file.write_text(json.dumps(config))
    loaded, _ = load_diamond(tmp_path / "old")
    assert loaded.net.xbar_input is False and (tmp_path / "old" / "note.txt").read_bytes() == b"kept"
    with pytest.raises(ValueError, match="clash"):
        save_diamond(old, tmp_path / "bad", teacher=policy, extra_files={"config.json": b"{}"})


def test_diamond_maps_have_their_own_overwrite_kind(tmp_path):
    """A Diamond Map is marked "diamond-map": a critic cannot replace it nor it a critic; one saved with the
    generic marker (before maps had their own kind) is still replaced by a new map."""
    import json

    from ttfkit.align.critic import ChunkCritic, save_critic
    from ttfkit.align.diamond import DiamondMap, MLPPhi
    from ttfkit.data.atomic import MARKER

    dm = save_diamond(DiamondMap(MLPPhi(4, hidden=8, depth=1)), tmp_path / "dm")
    assert json.loads((dm / MARKER).read_text()) == {"kind": "diamond-map"}
    with pytest.raises(FileExistsError, match="diamond-map"):
        save_critic(ChunkCritic(3, 2, 2, hidden=4), dm)
    critic = save_critic(ChunkCritic(3, 2, 2, hidden=4), tmp_path / "critic")
    with pytest.raises(FileExistsError, match="chunk-critic"):
        save_diamond(DiamondMap(MLPPhi(4, hidden=8, depth=1)), critic)
    assert (critic / "config.json").is_file() and (dm / "config.json").is_file()
    (dm / MARKER).write_text(json.dumps({"kind": "artefact"}))  # as maps were marked before
    save_diamond(DiamondMap(MLPPhi(4, hidden=8, depth=1)), dm)
    assert json.loads((dm / MARKER).read_text()) == {"kind": "diamond-map"}


def test_one_step_episodes_depend_on_their_seed_only(policy_and_data):
    """The map's x_0 input is drawn from the slot's generator (not torch's global RNG), so an episode's actions are
    a function of its seed, whatever the global RNG state or the other slots."""
    policy, ds, _ = policy_and_data
    dmap = policy_diamond(policy)
    with torch.no_grad():  # make x_0 matter: move the zero-initialised layer
        dmap.net.extra.weight.normal_(generator=torch.Generator().manual_seed(0))
    one = OneStepPolicy(policy, dmap)
    obs = next(iter(DataLoader(ds, batch_size=3)))["obs"]
    env_obs = {k: v[:, -1].numpy() for k, v in obs.items()}

    def run(global_seed, slot_seeds, rows=(0, 1, 2)):
        torch.manual_seed(global_seed)
        one.reset()
        for j, seed in enumerate(slot_seeds):
            one.reset_slot(j, seed=seed)
        step = {k: v[list(rows)] for k, v in env_obs.items()}
        return torch.stack([one.select_action(step) for _ in range(5)], 1)  # (B, 5, Da)

    a = run(0, [10, 11, 12])
    torch.testing.assert_close(run(1, [10, 11, 12]), a, rtol=0, atol=0)
    moved = run(2, [12, 10, 11], rows=(2, 0, 1))  # every episode in another slot
    torch.testing.assert_close(moved, a[[2, 0, 1]], rtol=0, atol=0)
    assert (run(0, [13, 11, 12])[0] - a[0]).abs().max() > 1e-4
