"""Let torchvision 0.28 import on a CPU-only torch (imported at startup by ttfkit_torchvision_shim.pth).

torchvision 0.28 is the only release built for torch 2.13, and its PyPI wheel links its C++ ops
(`torchvision/_C.so`) against CUDA torch libraries (libtorch_cuda.so). On a CPU torch the library
fails to load, torchvision carries on without its custom ops, and then
`torchvision/_meta_registrations.py` dies on `register_fake("torchvision::nms")` because the op was
never defined. This finder replaces only that module, and only when the C++ ops did not load, by
an empty one: everything LeRobot uses (models, transforms v2, io helpers) is pure Python, while
`torchvision.ops.nms` and friends keep raising torchvision's own "Couldn't load custom C++ ops".
Where the ops load (a CUDA torch), the finder steps aside and the real module is imported.
Nothing is imported here at interpreter start-up beyond `sys` and `importlib`.
"""

import importlib.abc
import importlib.machinery
import sys

_TARGET = "torchvision._meta_registrations"


class _EmptyModuleLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None  # default module creation

    def exec_module(self, module):
        module.__doc__ = "Placeholder: torchvision's C++ ops did not load, so no meta kernels exist."


class _TorchvisionMetaShim(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET:
            return None
        extension = sys.modules.get("torchvision.extension")
        if extension is None or extension._has_ops():
            return None
        return importlib.machinery.ModuleSpec(fullname, _EmptyModuleLoader())


if not any(isinstance(finder, _TorchvisionMetaShim) for finder in sys.meta_path):
    sys.meta_path.insert(0, _TorchvisionMetaShim())
