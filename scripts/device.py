"""``--device {auto,cpu,cuda}`` for every command that computes: one flag, one meaning.

``auto`` (the default) is CUDA when torch sees a GPU, else the CPU; ``cuda`` without a GPU is an
error that says so. Simulation (MuJoCo) always runs on the CPU cores; only torch work moves.
"""

from __future__ import annotations

import argparse

__all__ = ["DEVICES", "add_device_argument", "resolve_device"]

DEVICES = ("auto", "cpu", "cuda")


def add_device_argument(parser: argparse.ArgumentParser, default: str = "auto", what: str = "torch work") -> None:
    """Add ``--device`` (choices ``DEVICES``)."""
    parser.add_argument("--device", default=default, choices=DEVICES,
                        help=f"device for {what}: auto (CUDA when present, else CPU), cpu or cuda (default {default})")


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without a GPU raises ValueError."""
    import torch

    if name not in DEVICES:
        raise ValueError(f"--device must be one of {DEVICES}, got {name!r}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device cuda: torch {torch.__version__} sees no CUDA device "
                         f"(built with CUDA: {torch.version.cuda is not None}); use --device cpu or auto")
    return name
