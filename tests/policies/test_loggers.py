"""Experiment loggers: what TensorBoard's and W&B's own files hold equals the trainer's metrics.csv."""

import csv
import math
import struct
import sys

import numpy as np
import pytest

from ttfkit.policies.loggers import check_logger_names, eval_metrics, open_loggers
from ttfkit.policies.trainer import TrainConfig, train

TINY = dict(batch=8, lr=1e-3, warmup_steps=2, ckpt_every=4, log_every=1, val_fraction=0.34, horizon=8,
            n_obs_steps=2, n_action_steps=4, backbone_options={"hidden_dim": 32, "n_blocks": 1},
            policy_options={"encoder": {"lowdim_hidden": 16, "lowdim_features": 8}, "num_steps": 2})


def _history(run) -> dict[str, dict[int, float]]:
    """metrics.csv as {tag: {step: value}} in the loggers' tags."""
    out: dict[str, dict[int, float]] = {}
    with open(run / "metrics.csv", newline="") as f:
        for r in csv.DictReader(f):
            step = int(r["step"])
            for col, tag in (("train_loss", "train/loss"), ("lr", "train/lr"), ("grad_norm", "train/grad_norm"),
                             ("samples_per_s", "train/samples_per_s"), ("val_loss", "val/loss")):
                if r[col] != "":
                    out.setdefault(tag, {})[step] = float(r[col])
            out.setdefault("train/steps_per_s", {})[step] = float(r["samples_per_s"]) / TINY["batch"]
    return out


def _tensorboard_scalars(folder) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        steps = [e.step for e in events]
        assert len(steps) == len(set(steps)), f"{tag}: a step logged twice: {steps}"
        out[tag] = {e.step: e.value for e in events}
    return out


def test_tensorboard_events_equal_the_history_across_a_resume(tmp_path, tiny_store, crash_and_resume):
    config = TrainConfig(dataset=str(tiny_store), out=str(tmp_path / "run"), steps=8, log=("tensorboard",), **TINY)

    crash_and_resume(config, at=6)  # steps 5-6 are logged, then dropped: the resume restarts after step 4

    logged = _tensorboard_scalars(tmp_path / "run/tensorboard/train")
    history = _history(tmp_path / "run")
    assert set(logged) == set(history) and set(logged["train/loss"]) == set(range(1, 9))
    assert set(logged["val/loss"]) == {4, 8}
    for tag, values in history.items():  # event files hold float32
        assert logged[tag] == {s: pytest.approx(np.float32(v), rel=1e-6) for s, v in values.items()}, tag


def _wandb_records(path):
    """Records of a .wandb file (W&B's LevelDB-style log: 7-byte file header, 32 KiB blocks, chunks of
    crc32 (4) + length (2, LE) + type (1: full, 2: first, 3: middle, 4: last) + payload)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:8]
    block, pos, parts, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is zero padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            break
        parts += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            records.append(parts)
            parts = b""
    return records


def test_wandb_offline_run_holds_the_logged_history(tmp_path, tiny_store):
    import json

    from wandb.proto import wandb_internal_pb2

    config = TrainConfig(dataset=str(tiny_store), out=str(tmp_path / "run"), steps=8, log="wandb", **TINY)
    train(config)
    runs = list((tmp_path / "run/wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1, runs
    logged: dict[str, dict[int, float]] = {}
    config_keys = set()
    for raw in _wandb_records(runs[0]):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            assert items["_step"] == record.history.step.num
            for key, value in items.items():
                if not key.startswith("_"):
                    logged.setdefault(key, {})[record.history.step.num] = value
        elif kind in ("run", "config"):
            update = (record.run.config if kind == "run" else record.config).update
            config_keys |= {i.key or "/".join(i.nested_key) for i in update}
    history = _history(tmp_path / "run")
    assert set(logged) == set(history)
    for tag, values in history.items():  # JSON doubles: the values the trainer wrote, to repr precision
        assert logged[tag] == pytest.approx(values, rel=1e-12), tag
    assert {"lr", "optim", "steps", "dataset"} <= config_keys


def test_eval_metrics_and_no_op_log(tmp_path):
    from ttfkit.envs import EvalResult

    result = EvalResult(env_id="x", policy="p", seeds=(1, 2, 3, 4), successes=(True, False, True, True),
                        returns=(1.0, 0.0, 2.0, 5.0), lengths=(10, 50, 20, 40), env_spec="{}", max_steps=50)
    m = eval_metrics(result)
    assert m["eval/success"] == 0.75 and m["eval/mean_return"] == 2.0 and m["eval/mean_length"] == 30.0
    assert m["eval/success_ci_low"] < 0.75 < m["eval/success_ci_high"] and m["eval/episodes"] == 4
    with open_loggers((), tmp_path, kind="eval", name="r") as log:
        log.log({"eval/success": math.nan}, 1)
    assert list(tmp_path.iterdir()) == []


def test_names_are_checked_and_a_missing_package_names_the_extra(tmp_path, monkeypatch):
    assert check_logger_names("tensorboard, wandb") == ("tensorboard", "wandb")
    with pytest.raises(ValueError, match=r"TrainConfig: log: .*'tensorbord'"):
        TrainConfig(dataset="", out="", log=("tensorbord",))
    with pytest.raises(ValueError, match="distinct"):
        check_logger_names(("wandb", "wandb"))
    for module, extra in (("tensorboard", "tensorboard"), ("wandb", "wandb")):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
        with pytest.raises(ImportError, match=rf"pip install 'ttfkit\[{extra}\]'"):
            open_loggers((extra,), tmp_path, kind="train", name="r")


def test_ttf_train_log_flag_reaches_the_config():
    from ttfkit.scripts import cli, train as train_cli

    args = cli.parse(["train", "--dataset", "d.zarr", "--out", "r", "--log", "tensorboard,wandb"])[2]
    assert train_cli.config_from_args(args).log == ("tensorboard", "wandb")
    assert train_cli.config_from_args(cli.parse(["train", "--dataset", "d.zarr", "--out", "r"])[2]).log == ()
    with pytest.raises(ValueError, match="tensorbord"):
        train_cli.config_from_args(cli.parse(["train", "--dataset", "d.zarr", "--out", "r", "--log", "tensorbord"])[2])


def _wandb_segment(path):
    """(run id, {tag: {step: value}}) of one offline segment's .wandb file."""
    import json

    from wandb.proto import wandb_internal_pb2

    run_id, logged = None, {}
    for raw in _wandb_records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run_id = record.run.run_id
        elif kind == "history":
            for i in record.history.item:
                key = i.key or "/".join(i.nested_key)
                if not key.startswith("_"):
                    logged.setdefault(key, {})[record.history.step.num] = json.loads(i.value_json)
    return run_id, logged


def test_a_resumed_training_run_continues_its_wandb_run(tmp_path, tiny_store, crash_and_resume):
    """Crash after step 6 (checkpoint at 4), resume: the second offline segment has the first one's run id
    and sends only steps 7-8; together they hold every step once, and the steps both segments trained
    from the same weights (1-4 and 7-8 of the resumed history) equal metrics.csv."""
    config = TrainConfig(dataset=str(tiny_store), out=str(tmp_path / "run"), steps=8, log="wandb", **TINY)

    crash_and_resume(config, at=6)
    files = sorted((tmp_path / "run/wandb").glob("offline-run-*/run-*.wandb"), key=lambda p: p.stat().st_mtime)
    assert len(files) == 2, files
    (id1, first), (id2, second) = _wandb_segment(files[0]), _wandb_segment(files[1])
    assert id1 and id1 == id2
    assert set(first["train/loss"]) == set(range(1, 7)) and set(second["train/loss"]) == {7, 8}
    history = _history(tmp_path / "run")
    for tag in ("train/loss", "train/lr", "val/loss"):
        for step, value in history[tag].items():
            seg = second if step > 6 else first
            if step <= 4 or step > 6:
                assert seg[tag][step] == pytest.approx(value, rel=1e-12), (tag, step)
    # a fresh training run in another directory starts a W&B run of its own
    other = TrainConfig(dataset=str(tiny_store), out=str(tmp_path / "other"), steps=4, log="wandb", **TINY)
    train(other)
    (id3, _), = [_wandb_segment(p) for p in (tmp_path / "other/wandb").glob("offline-run-*/run-*.wandb")]
    assert id3 != id1
