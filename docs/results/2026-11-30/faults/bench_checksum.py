"""Cost of the CRC32 chunk checksum in ttfkit stores: write (add_episode) and full-read time and
size on disk, with and without it, measured in the same process (median of repeats, alternating).

    .venv/bin/python docs/results/2026-11-30/faults/bench_checksum.py --repeats 5 \
        --out docs/results/2026-11-30/faults/checksum.json
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numcodecs
import numpy as np
import torch

import ttfkit.data.replay_buffer as rb

CASES = {  # name -> (episodes, length, {key: (trailing shape, dtype)})
    "images 96x96x3 uint8 + state": (10, 200, {"pixels": ((96, 96, 3), np.uint8), "agent_pos": ((9,), np.float32),
                                              "action": ((4,), np.float32)}),
    "low-dim 39 + 4 float32": (60, 500, {"environment_state": ((39,), np.float32), "action": ((4,), np.float32)}),
}


def _episode(rng, length, keys):
    out = {}
    for k, (shape, dtype) in keys.items():
        if dtype == np.uint8:  # smooth images (compressible like camera frames) plus noise
            base = np.linspace(0, 200, shape[0] * shape[1]).reshape(1, shape[0], shape[1], 1)
            x = base + rng.integers(0, 30, size=(length, *shape))
            out[k] = x.clip(0, 255).astype(np.uint8)
        else:
            out[k] = np.cumsum(rng.normal(size=(length, *shape)), axis=0).astype(dtype)
    return out


def _plain():
    return {"compressors": rb._compressor()}


def _run(case, checksum, tmp):
    n_eps, length, keys = CASES[case]
    rng = np.random.default_rng(0)
    eps = [_episode(rng, length, keys) for _ in range(n_eps)]
    path = Path(tmp) / "s.zarr"
    shutil.rmtree(path, ignore_errors=True)
    codecs = rb._codecs if checksum else _plain
    saved, rb._codecs = rb._codecs, codecs
    try:
        t0 = time.perf_counter()
        with rb.ReplayBuffer.create(path) as buf:
            for e in eps:
                buf.add_episode(e)
        write = time.perf_counter() - t0
    finally:
        rb._codecs = saved
    buf = rb.ReplayBuffer.open(path)
    t0 = time.perf_counter()
    for k in buf.keys():
        buf[k][:buf.n_steps]
    read = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return write, read, size


def _codec_row(repeats):
    """Encode + decode of one ~2 MB low-dim chunk: Blosc alone vs Blosc then CRC32 (ttfkit's codecs)."""
    x = np.cumsum(np.random.default_rng(0).normal(size=(rb._CHUNK_BYTES // (39 * 4), 39)), axis=0).astype(np.float32)
    blosc, crc = rb._compressor(), numcodecs.CRC32()
    plain = (lambda: blosc.encode(x), lambda b: blosc.decode(b))
    check = (lambda: crc.encode(blosc.encode(x)), lambda b: blosc.decode(crc.decode(b)))
    times = {}
    for name, (enc, dec) in (("plain", plain), ("crc32", check)):
        te, td = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            b = enc()
            t1 = time.perf_counter()
            dec(b)
            te.append(t1 - t0)
            td.append(time.perf_counter() - t1)
        times[name] = (statistics.median(te), statistics.median(td))
    return {"case": "one 2 MB chunk, codecs only", "repeats": repeats,
            "encode_s": {k: v[0] for k, v in times.items()}, "decode_s": {k: v[1] for k, v in times.items()},
            "encode_ratio": times["crc32"][0] / times["plain"][0], "decode_ratio": times["crc32"][1] / times["plain"][1]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            _run(case, True, tmp)  # warm-up
            res = {True: [], False: []}
            for _ in range(args.repeats):
                for checksum in (False, True):
                    res[checksum].append(_run(case, checksum, tmp))
            med = {c: [statistics.median(r[i] for r in res[c]) for i in range(3)] for c in res}
            row = {"case": case, "repeats": args.repeats, "git": commit, "numcodecs": numcodecs.__version__,
                   "cpus": os.cpu_count(),
                   "write_s": {"plain": med[False][0], "crc32": med[True][0]},
                   "read_s": {"plain": med[False][1], "crc32": med[True][1]},
                   "bytes": {"plain": med[False][2], "crc32": med[True][2]},
                   "write_ratio": med[True][0] / med[False][0], "read_ratio": med[True][1] / med[False][1]}
            print(json.dumps(row))
            rows.append(row)
    row = _codec_row(20 * args.repeats)
    print(json.dumps(row))
    rows.append(row)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
