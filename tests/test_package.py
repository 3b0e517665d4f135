"""Packaging: every package folder is mapped in pyproject, and `ttf --help` lists the subcommands."""

import contextlib
import importlib.util
import io
import os
import tomllib
from pathlib import Path

import pytest

import ttfkit
from ttfkit.scripts import cli

ROOT = Path(__file__).resolve().parents[1]
_SKIP = {"tests", "build", "dist"}


def _package_folders() -> set[str]:
    """Dotted names of the regular-package tree under the root: every folder reached from the root
    through folders that hold an __init__.py (hidden folders, tests/ and build outputs skipped).
    A folder without __init__.py (e.g. a separate distribution's source tree) ends the walk."""
    found = set()
    for folder, dirs, _ in os.walk(ROOT):
        found.add(".".join(("ttfkit", *Path(folder).relative_to(ROOT).parts)))
        dirs[:] = [d for d in dirs if not (d.startswith(".") or d in _SKIP or d == "__pycache__")
                   and (Path(folder, d) / "__init__.py").is_file()]
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
