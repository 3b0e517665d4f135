"""DDP: `ttf train` under torchrun with 2 gloo CPU processes matches one process with the same global batch."""

import os
import subprocess
import sys

import torch

from ttfkit.policies.checkpoint import read_weights
from ttfkit.policies.trainer import TrainConfig, train

ARGS = ["--steps", "3", "--batch", "8", "--lr", "1e-3", "--warmup", "1", "--ckpt-every", "1", "--horizon", "8",
        "--n-action-steps", "4", "--val-fraction", "0", "--backbone-option", "hidden_dim=32",
        "--backbone-option", "n_blocks=1", "--policy-option", 'encoder={"lowdim_hidden": 16, "lowdim_features": 8}',
        "--no-progress", "--threads", "1"]


def test_two_process_ddp_equals_single_process(tmp_path, tiny_store):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "ttfkit.scripts.cli", "train", "--dataset", str(tiny_store), "--out", str(tmp_path / "ddp"), *ARGS]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("world size 2") == 2  # both ranks ran data-parallel

    single = TrainConfig(dataset=str(tiny_store), out=str(tmp_path / "one"), steps=3, batch=8, lr=1e-3,
                         warmup_steps=1, ckpt_every=1, horizon=8, n_action_steps=4, val_fraction=0.0,
                         backbone_options={"hidden_dim": 32, "n_blocks": 1},
                         policy_options={"encoder": {"lowdim_hidden": 16, "lowdim_features": 8}})
    train(single)
    for step in (1, 3):
        for which in (0, 1):  # model and EMA weights
            ddp = read_weights(tmp_path / f"ddp/checkpoints/step_{step:06d}")[which]
            one = read_weights(tmp_path / f"one/checkpoints/step_{step:06d}")[which]
            assert ddp.keys() == one.keys()
            for k in one:
                torch.testing.assert_close(ddp[k], one[k], rtol=1e-5, atol=1e-6, msg=f"step {step} {k}")
    first, last = read_weights(tmp_path / "one/checkpoints/step_000001")[0], read_weights(tmp_path / "one/checkpoints/step_000003")[0]
    assert any(not torch.equal(first[k], last[k]) for k in first)  # training moved the weights
