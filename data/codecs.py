"""Optional zarr codecs of stores that other projects write: imagecodecs' image codecs.

Diffusion Policy's real-robot stores compress camera arrays with imagecodecs' ``Jpeg2k`` (codec id
``imagecodecs_jpeg2k`` in ``.zarray``), which numcodecs only knows after
``imagecodecs.numcodecs.register_codecs()``. :func:`check_codecs` runs when a store is opened: it
reads the codec ids of every array's zarr 2 metadata and, when one is imagecodecs', registers
imagecodecs' codecs (the ``imagecodecs`` extra: ``pip install 'ttfkit[imagecodecs]'``), or raises a
``ValueError`` naming the store, the array, the codec and that command when imagecodecs is missing.
Any other codec numcodecs does not know is reported the same way, without the install hint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numcodecs

__all__ = ["check_codecs"]

_IMAGECODECS_PREFIX = "imagecodecs_"
_INSTALL = "pip install 'ttfkit[imagecodecs]'"


def check_codecs(path: str | Path, files: set[str]) -> None:
    """Make every codec the arrays of the zarr 2 store at ``path`` name available, or raise
    ``ValueError`` (module docstring). ``files``: the store's files, '/'-separated and relative to
    ``path``; reads only the ``.zarray`` ones."""
    path = Path(path)
    for name in sorted(f for f in files if f == ".zarray" or f.endswith("/.zarray")):
        zarray = path / name
        meta = json.loads(zarray.read_text())
        codecs = [meta.get("compressor")] + list(meta.get("filters") or [])
        for codec_id in (c["id"] for c in codecs if isinstance(c, dict) and "id" in c):
            if _known(codec_id):
                continue
            array = zarray.parent.relative_to(path).as_posix()
            if codec_id.startswith(_IMAGECODECS_PREFIX):
                if _register_imagecodecs() and _known(codec_id):
                    continue
                raise ValueError(f"{path}: array {array!r} is compressed with {codec_id!r}, an "
                                 f"imagecodecs codec; install it with {_INSTALL}")
            raise ValueError(f"{path}: array {array!r} uses codec {codec_id!r}, which numcodecs "
                             f"{numcodecs.__version__} does not know")


def _known(codec_id: str) -> bool:
    try:
        numcodecs.get_codec({"id": codec_id})
    except numcodecs.errors.UnknownCodecError:
        return False
    except Exception:  # noqa: BLE001 - known codec, but these placeholder args do not suit it
        return True
    return True


def _register_imagecodecs() -> bool:
    """Register imagecodecs' numcodecs codecs; False when imagecodecs is not installed."""
    try:
        from imagecodecs.numcodecs import register_codecs
    except ImportError:
        return False
    register_codecs()
    return True
