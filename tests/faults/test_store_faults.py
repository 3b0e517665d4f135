"""Every kind of file in a store deleted, truncated or overwritten with random bytes.

Each case then tries what users do next (read every episode, reopen for appending and append, as a
`ttf collect` resume does, and `verify`) and asserts: every failure is an error naming the store and
the damaged file or array (and chunk), and nothing that was intact before the fault is lost or
changed (arrays compared with the originals through zarr directly).
"""

import numpy as np
import pytest
import zarr

from ttfkit.data import Normalizer, ReplayBuffer, SequenceDataset

N = 6
OPS = ("delete", "truncate", "random")
# file -> text every error about it must contain
FILES = {
    ".zgroup": None,  # the root group's metadata: the store itself is named
    ".zattrs": ".zattrs",
    "meta/.zattrs": "meta/.zattrs",
    "meta/episode_ends/.zarray": "meta/episode_ends",
    "meta/episode_ends/0": "meta/episode_ends",
    "data/action/.zarray": "data/action",
    "data/action/0.0": "data/action",
    "data/pixels/0.0.0.0": "data/pixels",
}
# faults whose only loss is the damaged file's own content, and the store stays usable
HARMLESS = {(".zattrs", "delete"), ("meta/.zattrs", "delete")}


def _originals(episode):
    eps = [episode(i) for i in range(N)]
    return {k: np.concatenate([e[k] for e in eps]) for k in eps[0]}, np.cumsum([len(e["action"]) for e in eps])


def _attempts(path, episode):
    """What a user does with a store, in order; yields (name, exception or None)."""
    def read_all():
        buf = ReplayBuffer.open(path)
        assert buf.n_episodes == N
        for i in range(N):
            buf.get_episode(i)
        SequenceDataset(buf, horizon=8, obs_keys=("agent_pos",), val_fraction=0.0)
        Normalizer.fit(buf, ["agent_pos", "action"])

    def append():
        with ReplayBuffer.open(path, mode="a") as buf:
            buf.add_episode(episode(99))

    for name, fn in (("read", read_all), ("append", append)):
        try:
            fn()
            yield name, None
        except (ValueError, KeyError, OSError) as err:
            yield name, err
    yield "verify", ReplayBuffer.verify(path)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("rel", list(FILES))
def test_store_file_fault(store, faults, rel, op):
    data, ends = _originals(faults.episode)
    faults.damage(store / rel, op)
    results = dict(_attempts(store, faults.episode))
    must_name = str(store) if FILES[rel] is None else FILES[rel]
    if (rel, op) in HARMLESS:
        assert results["read"] is None and results["append"] is None and results["verify"] == []
    else:
        errors = [e for k, e in results.items() if k != "verify" and e is not None]
        assert errors or results["verify"], "the damage went unnoticed"
        for err in errors:
            assert str(store) in str(err) and must_name in str(err), err
        assert results["verify"] and all(must_name in p for p in results["verify"]), results["verify"]
    # nothing that was intact is lost: every undamaged array still holds its original rows
    damaged_array = rel.rsplit("/", 1)[0] if rel.count("/") >= 1 and rel != "meta/.zattrs" else None
    for key, want in data.items():
        if f"data/{key}" != damaged_array:
            np.testing.assert_array_equal(zarr.open_array(str(store / "data" / key), mode="r")[: len(want)], want)
    if damaged_array != "meta/episode_ends":
        np.testing.assert_array_equal(zarr.open_array(str(store / "meta" / "episode_ends"), mode="r")[:N], ends)
