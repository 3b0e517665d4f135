"""Let torchvision 0.28 import on a CPU-only torch (imported at startup by ttfkit_torchvision_shim.pth).

torchvision 0.28 is the only release built for torch 2.13, and its PyPI wheel links its C++ ops
(`torchvision/_C.so`) against CUDA torch libraries (libtorch_cuda.so). On a CPU torch the library
fails to load, torchvision carries on without its custom ops, and then
`torchvision/_meta_registrations.py` dies on `register_fake("torchvision::nms")` because the op was
never defined. This finder replaces only that module, and only when the C++ ops did not load, by
an empty one: everything LeRobot uses (models, transforms v2, io helpers) is pure Python, while
`torchvision.ops.nms` and friends keep raising torchvision's own "Couldn't load custom C++ ops".
Where the ops load (a CUDA torch), the finder steps aside and the real module is imported.

Video: LeRobot 0.4.4 decodes dataset videos with torchcodec, or without it through
`torchvision.io.VideoReader` on the "pyav" backend. torchvision 0.28 has no `VideoReader` any more,
and PyPI's torchcodec wheels link CUDA torch (libtorch_cuda, libnvrtc) and need a system FFmpeg,
so neither loads beside a CPU torch. When `torchvision.io` lacks `VideoReader`, this finder adds
:class:`PyAVVideoReader`, the part of that API LeRobot's pyav decoder uses (`seek`, iteration
over {"data": uint8 (C, H, W), "pts": seconds}, `.container`), on PyAV (requirements-lerobot.txt).
Nothing is imported here at interpreter start-up beyond `sys` and `importlib`.
"""

import importlib.abc
import importlib.machinery
import sys

_TARGET = "torchvision._meta_registrations"
_VIDEO_TARGET = "torchvision.io"


class _EmptyModuleLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None  # default module creation

    def exec_module(self, module):
        module.__doc__ = "Placeholder: torchvision's C++ ops did not load, so no meta kernels exist."


class PyAVVideoReader:
    """``torchvision.io.VideoReader(path, "video")`` on PyAV: frames in decode order from the
    keyframe at or before the last ``seek`` (``keyframes_only=False`` skips frames before it)."""

    def __init__(self, path, stream="video"):
        import av

        if stream != "video":
            raise ValueError(f"PyAVVideoReader reads the video stream only, got {stream!r}")
        self.container = av.open(str(path))
        self._stream = self.container.streams.video[0]
        self._frames = None
        self._start = None

    def seek(self, time_s, keyframes_only=False):
        """Position at the keyframe at or before ``time_s`` seconds; returns self."""
        self.container.seek(int(time_s / self._stream.time_base), stream=self._stream,
                            backward=True, any_frame=False)
        self._frames = None
        self._start = None if keyframes_only else float(time_s)
        return self

    def __iter__(self):
        return self

    def __next__(self):
        import torch

        if self._frames is None:
            self._frames = self.container.decode(self._stream)
        for frame in self._frames:
            pts = float(frame.pts * frame.time_base)
            if self._start is not None and pts < self._start:
                continue
            data = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
            return {"data": data, "pts": pts}  # data (C, H, W) uint8
        raise StopIteration


class _AddVideoReader(importlib.abc.Loader):
    """Runs torchvision.io's own loader, then adds PyAVVideoReader where VideoReader is missing."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        if not hasattr(module, "VideoReader"):
            module.VideoReader = PyAVVideoReader


class _TorchvisionMetaShim(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname == _VIDEO_TARGET:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None and spec.loader is not None:
                spec.loader = _AddVideoReader(spec.loader)
            return spec
        if fullname != _TARGET:
            return None
        extension = sys.modules.get("torchvision.extension")
        if extension is None or extension._has_ops():
            return None
        return importlib.machinery.ModuleSpec(fullname, _EmptyModuleLoader())


if not any(isinstance(finder, _TorchvisionMetaShim) for finder in sys.meta_path):
    sys.meta_path.insert(0, _TorchvisionMetaShim())
