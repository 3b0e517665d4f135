"""Faults that involve other processes: a second writer, kill -9 at random points of a store writer
and of `ttf train`, a full disk (RLIMIT_FSIZE on the child), a read-only output folder.

Each case asserts a clear error naming the store, run or file, and that everything written before
the fault is still there and unchanged.
"""

import multiprocessing
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ttfkit.data import ReplayBuffer
from ttfkit.data.replay_buffer import StoreLockedError
from ttfkit.policies.checkpoint import read_weights
from ttfkit.policies.trainer import TrainConfig, train

REPO = Path(__file__).resolve().parents[2]


def _child(code: str, prefix: tuple[str, ...] = (), **kw) -> subprocess.Popen:
    """A fresh Python process running ``code`` (for what must not share this process's torch)."""
    env = dict(os.environ, PYTHONPATH=str(REPO.parent), OMP_NUM_THREADS="1")
    return subprocess.Popen([*prefix, sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _fork(target, *args):
    """A forked child running ``target(conn, *args)`` (starts at once: the modules are loaded)."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    return proc, parent


def _hold_then_append_forever(conn, path, episode):
    buf = ReplayBuffer.open(path, mode="a")
    conn.send("ready")
    conn.recv()
    i = buf.n_episodes
    while True:
        buf.add_episode(episode(i))
        i += 1


def _assert_episodes(path, faults, n):
    buf = ReplayBuffer.open(path)
    assert buf.n_episodes >= n
    for i in range(buf.n_episodes):
        want, got = faults.episode(i), buf.get_episode(i)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])


def test_second_writer_is_refused_then_kill_9_at_random_points(store, faults):
    rng = random.Random(0)
    for attempt in range(3):
        proc, conn = _fork(_hold_then_append_forever, store, faults.episode)
        try:
            assert conn.recv() == "ready"
            if attempt == 0:
                with pytest.raises(StoreLockedError,
                                   match=rf"s\.zarr: another process is writing this store \(pid {proc.pid}"):
                    ReplayBuffer.open(store, mode="a")
            conn.send("go")
            time.sleep(rng.uniform(0.0, 0.5))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(30)
        with ReplayBuffer.open(store, mode="a") as buf:  # lock gone with the process; tail cleaned
            n = buf.n_episodes
            buf.add_episode(faults.episode(n))
        _assert_episodes(store, faults, n + 1)


def test_kill_9_at_a_random_point_of_ttf_train_then_resume_is_exact(runs, tmp_path):
    out = tmp_path / "killed"
    c = runs["config"]
    argv = ["--dataset", c["dataset"], "--out", str(out), "--steps", "6", "--batch", "8", "--lr", "1e-3",
            "--warmup", "2", "--ckpt-every", "2", "--log-every", "1", "--val-fraction", "0.34", "--horizon", "8",
            "--n-obs-steps", "2", "--n-action-steps", "4", "--backbone-option", "hidden_dim=32",
            "--backbone-option", "n_blocks=1", "--policy-option", "num_steps=2",
            "--policy-option", 'encoder={"lowdim_hidden": 16, "lowdim_features": 8}', "--threads", "1",
            "--device", "cpu", "--no-progress"]
    child = _child(f'''
        import sys
        from ttfkit.scripts.cli import main
        sys.exit(main(["train", *{argv!r}]))
    ''')
    deadline = time.time() + 120
    while not (out / "checkpoints" / "step_000002").exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(random.Random(1).uniform(0.0, 0.3))
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    last = train(TrainConfig(out=str(out), **c), resume=True)
    ref = runs["reference"] / "checkpoints" / "step_000006"
    for which in (0, 1):
        a, b = read_weights(last)[which], read_weights(ref)[which]
        assert all(torch.equal(a[k], b[k]) for k in b)


def _hold_run_lock(conn, out):
    from ttfkit.policies.trainer import _lock_run

    lock = _lock_run(out)  # noqa: F841 - held until the process ends
    conn.send("ready")
    conn.recv()


def test_second_trainer_on_one_run_folder_is_refused(runs, tmp_path):
    out = tmp_path / "busy"
    proc, conn = _fork(_hold_run_lock, out)
    try:
        assert conn.recv() == "ready"
        with pytest.raises(RuntimeError, match=rf"busy: another process is training into this run directory \(pid {proc.pid}"):
            train(TrainConfig(out=str(out), **runs["config"]))
        assert not (out / "checkpoints").exists()
    finally:
        conn.send("done")
        proc.join(30)


def _append_big_episode_on_a_full_disk(conn, path, episode):
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    big = episode(6, length=2000)
    big["pixels"] = np.random.default_rng(0).integers(0, 256, size=(2000, 8, 8, 3), dtype=np.uint8)
    try:
        ReplayBuffer.open(path, mode="a").add_episode(big)
        conn.send("no error")
    except OSError as e:
        conn.send(str(e))


def test_full_disk_while_appending_loses_nothing(store, faults):
    proc, conn = _fork(_append_big_episode_on_a_full_disk, store, faults.episode)
    message = conn.recv()
    proc.join(30)
    assert "s.zarr: data/" in message and "cannot append" in message and "File too large" in message
    with ReplayBuffer.open(store, mode="a") as buf:  # the recorded tail is truncated
        assert buf.n_episodes == 6
        buf.add_episode(faults.episode(6))
    _assert_episodes(store, faults, 7)


def _save_on_a_full_disk(conn, src, dst):
    from ttfkit.policies import load

    policy = load(src)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4_000, 4_000))
    try:
        policy.save(dst)
        conn.send("no error")
    except OSError as e:
        conn.send(str(e))


def test_full_disk_while_saving_a_checkpoint_leaves_no_partial_checkpoint(runs, tmp_path):
    proc, conn = _fork(_save_on_a_full_disk, runs["reference"] / "checkpoints" / "step_000006", tmp_path / "ckpt")
    message = conn.recv()
    proc.join(30)
    assert f"{tmp_path / 'ckpt'}: cannot write the checkpoint" in message and "File too large" in message
    assert list(tmp_path.iterdir()) == []  # neither a partial checkpoint nor a temporary folder


def _unprivileged() -> tuple[str, ...] | None:
    """Command prefix that drops root's permission override (a user namespace), () when not root,
    None when this machine cannot make a folder read-only for the child."""
    if os.geteuid() != 0:
        return ()
    prefix = ("unshare", "--user", "--map-user=65534", "--map-group=65534")
    if shutil.which("unshare") and subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
        return prefix
    return None


def test_read_only_output_folder(store, faults):
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("running as root without user namespaces: no folder is read-only for the child")
    root = Path(tempfile.mkdtemp())
    try:
        shutil.copytree(store, root / "s.zarr")
        for d, dirs, files in os.walk(root):
            os.chmod(d, 0o555)
            for f in files:
                os.chmod(Path(d) / f, 0o444)
        before = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        child = _child(f'''
            from ttfkit.data import ReplayBuffer
            for what, fn in (("create", lambda: ReplayBuffer.create({str(root / "new.zarr")!r})),
                             ("append", lambda: ReplayBuffer.open({str(root / "s.zarr")!r}, mode="a"))):
                try:
                    fn()
                    print(what, "no error")
                except PermissionError as e:
                    print(what, e)
        ''', prefix=prefix)
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        lines = out.strip().splitlines()
        assert lines[0].startswith("create ") and "Permission denied" in lines[0] and str(root) in lines[0]
        assert lines[1].startswith(f"append {root / 's.zarr'}: cannot take the writer lock"), lines[1]
        after = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        assert after == before
    finally:
        for d, _, _ in os.walk(root):
            os.chmod(d, 0o755)
        shutil.rmtree(root)
