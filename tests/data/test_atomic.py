"""replace_path: the new result lands in place, the old one is gone, nothing is left beside it."""

from ttfkit.data.atomic import replace_path


def test_replaces_a_directory_and_leaves_no_trace(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    tmp = tmp_path / ".out.tmp"
    tmp.mkdir()
    (tmp / "new.txt").write_text("new")
    assert replace_path(tmp, target) == target
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_replaces_a_file_and_creates_missing_parents(tmp_path):
    tmp = tmp_path / "new"
    tmp.write_text("new")
    target = tmp_path / "a" / "b" / "file"
    replace_path(tmp, target)
    assert target.read_text() == "new"
    other = tmp_path / "other"
    other.write_text("newer")
    replace_path(other, target)
    assert target.read_text() == "newer" and sorted(p.name for p in target.parent.iterdir()) == ["file"]
