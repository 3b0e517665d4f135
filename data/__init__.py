"""ttfkit.data: zarr episodic stores in Diffusion Policy's layout, padded training windows,
normalisation, and importers.

- :class:`ReplayBuffer`: ``data/<key>`` arrays (T, ...) + ``meta/episode_ends``; zarr format 2.
- :class:`SequenceDataset`: torch Dataset of padded H-step windows (index To-1 is "now").
- :class:`Normalizer`: per-key min-max / mean-std affine maps (nn.Module, safetensors).
- :func:`import_robomimic`: robomimic HDF5 -> zarr store.
"""

from ttfkit.data.dataset import SequenceDataset
from ttfkit.data.normalizer import Normalizer
from ttfkit.data.replay_buffer import ReplayBuffer
from ttfkit.data.robomimic import import_robomimic

__all__ = ["ReplayBuffer", "SequenceDataset", "Normalizer", "import_robomimic"]
