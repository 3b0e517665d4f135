"""Trainer: exact resume after an interruption, metrics, checkpoints, LR schedule, fixed validation."""

import csv
import json
import math

import pytest
import torch

from ttfkit.policies import load
from ttfkit.policies.checkpoint import read_weights
from ttfkit.policies.trainer import TrainConfig, _global_indices, _lr_scheduler, train

TINY = dict(batch=8, lr=1e-3, warmup_steps=2, ckpt_every=4, log_every=1, val_fraction=0.34, horizon=8,
            n_obs_steps=2, n_action_steps=4, backbone_options={"hidden_dim": 32, "n_blocks": 1},
            policy_options={"encoder": {"lowdim_hidden": 16, "lowdim_features": 8}, "num_steps": 2})


def _rows(run):
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in csv.DictReader(f)]


class _Crash(Exception):
    pass


@pytest.mark.parametrize("optim", ["adamw", "muon", "dopr-adamw"])
def test_resume_after_interruption_reproduces_the_run_exactly(tmp_path, tiny_store, optim):
    full = TrainConfig(dataset=str(tiny_store), out=str(tmp_path / "a"), steps=8, optim=optim, **TINY)
    last = train(full)
    assert last.name == "step_000008"

    cut = TrainConfig(dataset=str(tiny_store), out=str(tmp_path / "b"), steps=8, optim=optim, **TINY)

    def crash(step, metrics):
        if step == 6:  # two steps past the checkpoint at 4: their rows must be dropped on resume
            raise _Crash

    with pytest.raises(_Crash):
        train(cut, progress=crash)
    assert [r["step"] for r in _rows(tmp_path / "b")] == [str(s) for s in range(1, 7)]
    with pytest.raises(FileExistsError, match="--resume"):
        train(cut)
    train(cut, resume=True)

    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")
    for which in (0, 1):  # model and EMA weights, bit for bit
        a = read_weights(tmp_path / "a/checkpoints/step_000008")[which]
        b = read_weights(tmp_path / "b/checkpoints/step_000008")[which]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_outputs_metrics_and_loadable_checkpoints(tmp_path, tiny_store):
    config = TrainConfig(dataset=str(tiny_store), out=str(tmp_path / "r"), steps=8, **TINY)
    train(config)
    run = tmp_path / "r"
    assert TrainConfig.from_dict(json.loads((run / "train_config.json").read_text())) == config
    rows = _rows(run)
    assert [int(r["step"]) for r in rows] == list(range(1, 9))
    val = {int(r["step"]): r["val_loss"] for r in rows}
    assert val[1] == "" and math.isfinite(float(val[4])) and math.isfinite(float(val[8]))
    lrs = [float(r["lr"]) for r in rows]
    assert lrs == pytest.approx([_closed_form_lr(1e-3, s, 2, 8, 0.0) for s in range(1, 9)], rel=1e-15)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000004", "step_000008"]
    policy = load(run / "checkpoints/step_000008")
    meta = json.loads((run / "checkpoints/step_000008/config.json").read_text())["metadata"]
    assert meta["step"] == 8 and not set(meta["train_episodes"]) & set(meta["val_episodes"])
    assert len(meta["val_episodes"]) == 2
    obs = {"agent_pos": torch.zeros(1, 2, 3), "environment_state": torch.zeros(1, 2, 4)}
    assert policy.predict_action_chunk(obs).shape == (1, 8, 2)
    with pytest.raises(ValueError, match="lr"):
        train(TrainConfig(dataset=str(tiny_store), out=str(tmp_path / "r"), steps=8, **{**TINY, "lr": 5e-4}),
              resume=True)


def _closed_form_lr(peak: float, i: int, warmup: int, steps: int, floor: float) -> float:
    """lr after i optimizer steps: linear warmup to ``peak``, then cosine to ``floor * peak`` at ``steps``."""
    if i < warmup:
        return peak * (i + 1) / warmup
    p = min(1.0, (i - warmup) / max(1, steps - warmup))
    return peak * (floor + (1 - floor) * (1 + math.cos(math.pi * p)) / 2)


@pytest.mark.parametrize("warmup, steps, floor", [(10, 110, 0.1), (0, 50, 0.0), (1, 20, 0.5), (30, 20, 0.0)])
def test_lr_schedule_equals_the_closed_form_in_every_param_group(warmup, steps, floor):
    config = TrainConfig(dataset="", out="", steps=steps, warmup_steps=warmup, min_lr_ratio=floor)
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    opt = torch.optim.SGD([{"params": params[:1], "lr": 1e-3}, {"params": params[1:], "lr": 0.02}], lr=1.0)
    scheduler = _lr_scheduler(opt, config)
    for i in range(steps + 1):
        assert [g["lr"] for g in opt.param_groups] == [
            pytest.approx(_closed_form_lr(peak, i, warmup, steps, floor), rel=1e-15, abs=0) for peak in (1e-3, 0.02)]
        opt.step()
        scheduler.step()
        if i == steps // 2:  # a restored scheduler (state dict) continues the same numbers
            fresh = torch.optim.SGD([{"params": params[:1], "lr": 1e-3}, {"params": params[1:], "lr": 0.02}], lr=1.0)
            restored = _lr_scheduler(fresh, config)  # built first, then both states loaded, as on resume
            fresh.load_state_dict(opt.state_dict())
            restored.load_state_dict(scheduler.state_dict())
            opt, scheduler = fresh, restored


def test_resume_inside_the_warmup_equals_the_uninterrupted_run(tmp_path, tiny_store, crash_and_resume):
    warm = {**TINY, "warmup_steps": 6}  # checkpoint at 4 lies inside the warmup
    full = TrainConfig(dataset=str(tiny_store), out=str(tmp_path / "a"), steps=8, **warm)
    train(full)
    crash_and_resume(TrainConfig(dataset=str(tiny_store), out=str(tmp_path / "b"), steps=8, **warm), at=5)
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")
    assert [float(r["lr"]) for r in _rows(tmp_path / "b")] == pytest.approx(
        [_closed_form_lr(1e-3, s, 6, 8, 0.0) for s in range(1, 9)], rel=1e-15)


def test_batch_order_is_a_pure_function_of_seed_and_step():
    n, b = 10, 4
    order = [_global_indices(n, b, 3, s, {}) for s in range(1, 6)]  # 20 positions = 2 epochs
    flat = torch.tensor([int(i) for o in order for i in o])
    assert sorted(flat[:10].tolist()) == list(range(10)) and sorted(flat[10:].tolist()) == list(range(10))
    assert (_global_indices(n, b, 3, 4, {}) == order[3]).all()  # no state needed
    assert not (_global_indices(n, b, 4, 1, {}) == order[0]).all()


def test_config_validation():
    with pytest.raises(ValueError, match="val_fraction"):
        TrainConfig(dataset="x", out="y", val_fraction=1.5)
    with pytest.raises(ValueError, match="horizon"):
        TrainConfig(dataset="x", out="y", policy_options={"horizon": 4})


def test_optimizer_options_reach_the_optimizer(tmp_path, tiny_store):
    """optim_options change the run (damping 1e4 makes DoPr's AP a tiny rescaling, unlike 1e-3) and an
    unknown option is an error naming it."""
    def weights(damping, name):
        config = TrainConfig(dataset=str(tiny_store), out=str(tmp_path / name), steps=4, optim="dopr-adamw",
                             optim_options={"damping": damping, "stat_every": 1, "inverse_every": 1}, **TINY)
        return read_weights(train(config))[0]

    low, high, again = weights(1e-3, "a"), weights(1e4, "b"), weights(1e-3, "c")
    assert all(torch.equal(low[k], again[k]) for k in low)
    assert any(not torch.allclose(low[k], high[k]) for k in low)
    assert json.loads((tmp_path / "a" / "train_config.json").read_text())["optim_options"]["damping"] == 1e-3
    with pytest.raises(TypeError, match="dampnig"):
        train(TrainConfig(dataset=str(tiny_store), out=str(tmp_path / "d"), steps=4, optim="dopr-adamw",
                          optim_options={"dampnig": 1.0}, **TINY))


def test_amp_trains_in_bf16_autocast_and_keeps_float32_weights(tmp_path, tiny_store):
    """--amp: the loss is computed under bf16 autocast (it differs from float32 at bf16 precision,
    not more), weights and checkpoints stay float32."""
    losses = {}
    for amp in (False, True):
        cfg = TrainConfig(dataset=str(tiny_store), out=str(tmp_path / f"amp{amp}"), steps=4, amp=amp, **TINY)
        last = train(cfg)
        losses[amp] = [float(r["train_loss"]) for r in _rows(tmp_path / f"amp{amp}")]
        model, ema = read_weights(last)
        assert all(v.dtype == torch.float32 for v in [*model.values(), *ema.values()] if v.is_floating_point())
    assert losses[True] != losses[False]  # autocast really ran in bf16
    assert losses[True][0] == pytest.approx(losses[False][0], rel=2e-2)  # same first batch, bf16 rounding


def test_split_seed_fixes_the_validation_split_across_training_seeds(tmp_path, tiny_store):
    def run(name, **kw):
        train(TrainConfig(dataset=str(tiny_store), out=str(tmp_path / name), steps=4, **{**TINY, **kw}))
        meta = json.loads((tmp_path / name / "checkpoints/step_000004/config.json").read_text())["metadata"]
        return sorted(meta["val_episodes"]), _rows(tmp_path / name)

    split = {seed: run(f"s{seed}", seed=seed)[0] for seed in (0, 1, 2)}
    assert len({tuple(v) for v in split.values()}) > 1  # by default each training seed holds out other episodes
    shared = [run(f"f{seed}", seed=seed, split_seed=1)[0] for seed in (0, 2)]
    assert shared == [split[1], split[1]]
    # split_seed equal to seed is the default exactly (old runs resume and reproduce)
    assert run("same", seed=2, split_seed=2)[1] == _rows(tmp_path / "s2")
