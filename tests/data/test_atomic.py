"""replace_path: the new result lands in place, the old one is gone, nothing is left beside it, and
only an artefact ttfkit wrote (of the same kind) is ever replaced."""

import json

import pytest

from ttfkit.data.atomic import MARKER, artefact_kind, replace_path


def _dir(path, name, text):
    path.mkdir()
    (path / name).write_text(text)
    return path


def test_replaces_a_marked_directory_and_leaves_no_trace(tmp_path):
    target = tmp_path / "out"
    replace_path(_dir(tmp_path / ".out.tmp1", "old.txt", "old"), target, kind="export")
    assert artefact_kind(target) == "export"
    assert replace_path(_dir(tmp_path / ".out.tmp2", "new.txt", "new"), target, kind="export") == target
    assert sorted(p.name for p in target.iterdir()) == sorted([MARKER, "new.txt"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_creates_missing_parents_and_replaces_an_empty_directory(tmp_path):
    target = tmp_path / "a" / "b" / "run"
    replace_path(_dir(tmp_path / "t1", "x", "1"), target)
    assert (target / "x").read_text() == "1" and artefact_kind(target) == "artefact"
    empty = tmp_path / "empty"
    empty.mkdir()
    replace_path(_dir(tmp_path / "t2", "y", "2"), empty, kind="export")
    assert (empty / "y").read_text() == "2"


@pytest.mark.parametrize("what", ["user folder", "file", "other kind", "broken marker"])
def test_refuses_anything_ttfkit_did_not_write_as_this_kind(tmp_path, what):
    target = tmp_path / "target"
    if what == "file":
        target.write_text("user data")
    else:
        _dir(target, "notes.txt", "user data")
        if what == "other kind":
            (target / MARKER).write_text(json.dumps({"kind": "policy-checkpoint"}))
        if what == "broken marker":
            (target / MARKER).write_text("{")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    tmp = _dir(tmp_path / ".target.tmp", "new.txt", "new")
    with pytest.raises(FileExistsError, match=r"target: refusing to replace it"):
        replace_path(tmp, target, kind="lerobot-dataset")
    assert "user data" in ((target / "notes.txt") if target.is_dir() else target).read_text()
    assert sorted(p.name for p in tmp_path.rglob("*") if ".target.tmp" not in str(p)) == before


def test_a_generic_artefact_is_replaced_only_when_the_caller_recognises_it(tmp_path):
    target = _dir(tmp_path / "target", "info.txt", "old")
    (target / MARKER).write_text(json.dumps({"kind": "artefact"}))  # written before the kind had a name
    with pytest.raises(FileExistsError, match="it is a ttfkit artefact, not a ttfkit lerobot-dataset"):
        replace_path(_dir(tmp_path / ".t1", "new.txt", "new"), target, kind="lerobot-dataset",
                     legacy=lambda p: (p / "other.txt").is_file())
    assert (target / "info.txt").read_text() == "old"
    replace_path(_dir(tmp_path / ".t2", "new.txt", "new"), target, kind="lerobot-dataset",
                 legacy=lambda p: (p / "info.txt").is_file())
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "new.txt"]
    assert artefact_kind(target) == "lerobot-dataset"
