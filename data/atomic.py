"""Atomic replacement of a directory written under a temporary name, and ttfkit's artefact marker.

Datasets, checkpoints and exports are built in a temporary sibling path and then moved into place, so
a crash leaves either the old result or the new one, never a half-written mix. An existing target is
renamed aside first and deleted only after the new one is in place.

Only an artefact ttfkit itself wrote may be replaced: every directory ``replace_path`` moves into place
carries a marker naming its kind (``.ttfkit.json`` = ``{"kind": ...}``; a zarr store carries it in
the attributes of its ``meta`` group instead, ``meta/.zattrs`` = ``{"ttfkit": {"kind": ...}}``, so
zarr sees no foreign file and the user's root attributes stay as they were). An existing
target is replaced only when it is an empty directory or carries the marker of the same kind;
anything else (a user's folder, a file, a store written by another tool, a ttfkit artefact of another
kind, or one written before markers existed) is refused with ``FileExistsError`` naming the path.
Kinds: "replay-buffer", "policy-checkpoint", "train-run", "chunk-critic", "lerobot-dataset",
"lerobot-policy"; "artefact" (generic) for writers that name none. Exports written before they had
their own kind carry "artefact"; a caller passes ``legacy(path)`` to accept those it recognises.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

__all__ = ["replace_path", "check_replaceable", "artefact_kind", "write_marker", "MARKER"]

MARKER = ".ttfkit.json"
_GENERIC = "artefact"


def replace_path(tmp: str | os.PathLike, path: str | os.PathLike, kind: str | None = None,
                 legacy: Callable[[Path], bool] | None = None) -> Path:
    """Move the finished directory ``tmp`` to ``path``; returns ``path``.

    ``kind`` names what ``tmp`` is ("replay-buffer", "policy-checkpoint", ...); when None, the kind
    of ``tmp``'s own marker is used, else the generic "artefact". ``tmp`` is marked with it if it has
    no marker yet. An existing ``path`` is replaced only if it is an empty directory or a ttfkit
    artefact of the same kind (module docstring), or a generic "artefact" for which ``legacy(path)`` is
    True; otherwise ``FileExistsError`` and nothing changes.
    """
    tmp, path = Path(tmp), Path(path)
    kind = kind or artefact_kind(tmp) or _GENERIC
    if artefact_kind(tmp) is None:
        write_marker(tmp, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if path.exists() or path.is_symlink():
        check_replaceable(path, kind, legacy)
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(path, old)
    try:
        os.rename(tmp, path)
    except OSError:
        if old is not None:  # put the old artefact back
            os.rename(old, path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def artefact_kind(path: str | os.PathLike) -> str | None:
    """Kind recorded by ttfkit's marker in directory ``path`` (None: no marker, or not a directory)."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return None
    for file, pick in ((path / MARKER, lambda d: d.get("kind")),
                       (path / "meta" / ".zattrs", lambda d: (d.get("ttfkit") or {}).get("kind"))):
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
        kind = pick(data) if isinstance(data, dict) else None
        if isinstance(kind, str) and kind:
            return kind
    return None


def write_marker(path: str | os.PathLike, kind: str) -> None:
    """Mark directory ``path`` as a ttfkit artefact of ``kind`` (writes ``path/.ttfkit.json``)."""
    (Path(path) / MARKER).write_text(json.dumps({"kind": kind}))


def check_replaceable(path: str | os.PathLike, kind: str, legacy: Callable[[Path], bool] | None = None) -> None:
    """Raise ``FileExistsError`` unless an existing ``path`` may be replaced by a ``kind`` artefact
    (``legacy``: see ``replace_path``)."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return
    found = artefact_kind(path)
    if found == kind or (found == _GENERIC and legacy is not None and legacy(path)):
        return
    what = (f"a ttfkit {found}" if found else
            "a file" if not path.is_dir() else "a folder without ttfkit's marker")
    raise FileExistsError(f"{path}: refusing to replace it: it is {what}, not a ttfkit {kind}; "
                          f"remove it yourself or choose another path")
