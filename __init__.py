"""ttfkit: see the test-time-feedback gap between validation loss and closed-loop success, and close it.

The repository root is this package: ``ttfkit.data`` is ``data/``, ``ttfkit.envs`` is ``envs/`` and so
on (mapped in pyproject.toml). Subpackages import their heavy dependencies lazily.
"""

__version__ = "0.1.0"
