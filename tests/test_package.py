"""Packaging: every package folder is mapped in pyproject, and `ttf --help` lists the subcommands."""

import contextlib
import importlib.util
import io
import tomllib
from pathlib import Path

import pytest

import ttfkit
from ttfkit.scripts import cli

ROOT = Path(__file__).resolve().parents[1]
_SKIP = {"tests", "build", "dist"}


def _package_folders() -> set[str]:
    """Dotted names (under ttfkit) of every folder below the root that holds an __init__.py."""
    found = set()
    for init in ROOT.rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT)
        parts = rel.parts
        if any(p.startswith(".") or p in _SKIP or p.endswith(".egg-info") or p == "__pycache__"
               for p in parts):
            continue
        found.add(".".join(("ttfkit", *parts)))
    return found


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {"ttfkit": "."}
    listed = set(config["packages"])
    folders = _package_folders()
    assert "ttfkit" in folders and "ttfkit.data" in folders
    assert folders - listed == set(), f"folders with __init__.py missing from pyproject: " \
                                      f"{sorted(folders - listed)}"
    assert listed - folders == set(), f"pyproject lists packages without a folder: " \
                                      f"{sorted(listed - folders)}"
    for name in listed:  # each maps to the folder of the same dotted path below the root
        folder = ROOT.joinpath(*name.split(".")[1:])
        assert (folder / "__init__.py").is_file(), name


def test_import_resolves_to_this_checkout():
    import ttfkit.data as data

    assert Path(ttfkit.__file__).resolve().parent == ROOT
    assert Path(data.__file__).resolve().parent == ROOT / "data"


def test_ttf_help_lists_available_subcommands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    available = [name for name, (mod, _) in cli.SUBCOMMANDS.items()
                 if (ROOT / "scripts" / f"{mod}.py").is_file()]
    assert "data" in available
    for name, (mod, text) in cli.SUBCOMMANDS.items():
        has_module = importlib.util.find_spec(f"ttfkit.scripts.{mod}") is not None
        assert (f"  {name:<10} {text}" in out) == has_module, name


def test_ttf_unknown_subcommand_is_an_error(capsys):
    with pytest.raises(SystemExit) as e, contextlib.redirect_stderr(io.StringIO()) as err:
        cli.main(["no-such-command"])
    assert e.value.code == 2
    assert "unknown subcommand 'no-such-command'" in err.getvalue()
