"""Atomic replacement of a file or directory written under a temporary name.

Datasets, checkpoints and exports are built in a temporary sibling path and then moved into place, so
a crash leaves either the old result or the new one, never a half-written mix. An existing target is
renamed aside first and deleted only after the new one is in place.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

__all__ = ["replace_path"]


def replace_path(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Move the finished ``tmp`` to ``path``, replacing whatever is there; returns ``path``."""
    tmp, path = Path(tmp), Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if path.exists() or path.is_symlink():
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(path, old)
    os.rename(tmp, path)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    return path
