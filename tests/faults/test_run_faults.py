"""Every kind of file in a training run deleted, truncated or overwritten with random bytes, then
`load` and `--resume` as a user would run them.

A run interrupted after step 5 (checkpoints at steps 2 and 4) is damaged in its newest checkpoint or
its run-level files. Loading the damaged checkpoint fails with an error naming the file; resuming
falls back to the newest checkpoint that loads (or refuses, naming the file) and, when it resumes,
ends bit for bit where the uninterrupted reference run ended: nothing that was intact is lost.
"""

import logging
import shutil

import pytest
import torch

from ttfkit.policies import load
from ttfkit.policies.checkpoint import read_weights
from ttfkit.policies.trainer import TrainConfig, train

OPS = ("delete", "truncate", "random")
CKPT_FILES = ("config.json", "model.safetensors", "normalizer.safetensors", "trainer_state.json",
              "trainer_state.safetensors")
LOAD_READS = {"config.json", "model.safetensors", "normalizer.safetensors"}  # what `load` opens
RESUME_READS = {"config.json", "model.safetensors", "trainer_state.json", "trainer_state.safetensors"}


def _copy(runs, tmp_path, name="run"):
    out = tmp_path / name
    shutil.copytree(runs["crashed"], out)
    return out


def _resume(runs, out):
    return train(TrainConfig(out=str(out), **runs["config"]), resume=True)


def _assert_same_weights(a, b):
    for which in (0, 1):  # model and EMA
        x, y = read_weights(a)[which], read_weights(b)[which]
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", CKPT_FILES)
def test_checkpoint_file_fault_load(runs, faults, tmp_path, name, op):
    out = _copy(runs, tmp_path)
    step4 = out / "checkpoints" / "step_000004"
    faults.damage(step4 / name, op)
    if name in LOAD_READS:
        with pytest.raises((ValueError, FileNotFoundError), match=rf"step_000004/{name}"):
            load(step4)
    else:
        load(step4)  # the policy itself is intact


# one resume per file (each damage kind used), as resuming is the slow part
@pytest.mark.parametrize("name,op", [(n, OPS[i % len(OPS)]) for i, n in enumerate(CKPT_FILES)])
def test_checkpoint_file_fault_resume(runs, faults, tmp_path, caplog, name, op):
    out = _copy(runs, tmp_path)
    step4 = out / "checkpoints" / "step_000004"
    intact = {p.name: p.read_bytes() for p in (out / "checkpoints" / "step_000002").iterdir()}
    faults.damage(step4 / name, op)
    with caplog.at_level(logging.WARNING):
        last = _resume(runs, out)
    _assert_same_weights(last, runs["reference"] / "checkpoints" / "step_000006")
    if name in RESUME_READS:
        assert f"skipping {step4}" in caplog.text and name in caplog.text
        assert [p.name.split(".damaged-")[0] for p in (out / "checkpoints").glob("step_000004.damaged-*")] == [
            "step_000004"]  # kept aside, not deleted
    assert {p.name: p.read_bytes() for p in (out / "checkpoints" / "step_000002").iterdir()} == intact


@pytest.mark.parametrize("op", OPS)
def test_train_config_fault_refuses_naming_the_file_and_changes_nothing(runs, faults, tmp_path, op):
    out = _copy(runs, tmp_path)
    before = {p.relative_to(out): p.read_bytes() for p in (out / "checkpoints").rglob("*") if p.is_file()}
    faults.damage(out / "train_config.json", op)
    with pytest.raises((ValueError, FileNotFoundError), match=r"train_config\.json"):
        _resume(runs, out)
    after = {p.relative_to(out): p.read_bytes() for p in (out / "checkpoints").rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.parametrize("op", ("truncate", "random"))
def test_damaged_metrics_csv_is_kept_aside_and_the_run_resumes(runs, faults, tmp_path, op):
    out = _copy(runs, tmp_path)
    faults.damage(out / "metrics.csv", op)
    damaged = (out / "metrics.csv").read_bytes()
    _assert_same_weights(_resume(runs, out), runs["reference"] / "checkpoints" / "step_000006")
    assert [p.read_bytes() for p in out.glob("metrics.csv.damaged-*")] == [damaged]


def test_every_checkpoint_damaged_is_a_clear_error(runs, tmp_path):
    out = _copy(runs, tmp_path)
    for step in ("step_000002", "step_000004"):
        (out / "checkpoints" / step / "model.safetensors").write_bytes(b"\0" * 8)
    with pytest.raises(ValueError, match="no checkpoint under .* loads"):
        _resume(runs, out)


def test_stale_temporary_checkpoint_folders_are_removed(runs, tmp_path):
    out = _copy(runs, tmp_path)
    stale = out / "checkpoints" / ".step_000006.tmp-deadbeef"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"partial")
    _assert_same_weights(_resume(runs, out), runs["reference"] / "checkpoints" / "step_000006")
    assert not stale.exists()


def test_a_moved_run_folder_resumes(runs, tmp_path):
    out = _copy(runs, tmp_path, "moved/elsewhere")
    _assert_same_weights(_resume(runs, out), runs["reference"] / "checkpoints" / "step_000006")


def test_nan_observations_and_float64(runs):
    policy = load(runs["reference"] / "checkpoints" / "step_000006")
    g = torch.Generator().manual_seed(0)
    obs = {k: torch.randn(2, 2, *s, generator=g, dtype=torch.float64) for k, s in policy.config.obs_shapes.items()}
    noise = torch.randn(2, policy.config.horizon, policy.config.action_dim, generator=g)
    a64 = policy.predict_action_chunk(obs, noise=noise)
    a32 = policy.predict_action_chunk({k: v.float() for k, v in obs.items()}, noise=noise)
    assert torch.equal(a64, a32)  # any float dtype: the same actions as float32
    key = next(iter(obs))
    obs[key][1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=rf"observation '{key}' holds a non-finite value nan at index \(1, 0, 0\)"):
        policy.predict_action_chunk(obs, noise=noise)
    policy.check_finite_obs = False  # the opt-out: NaN passes through to the caller
    assert torch.isnan(policy.predict_action_chunk(obs, noise=noise)[1]).any()
