"""PyTorch zip checkpoints (`torch.save`, Lightning's `.ckpt`) read without PyTorch and without running their code.

A Lightning checkpoint pickles omegaconf objects (the hyperparameters) and callback state beside the `state_dict`,
so `torch.load(weights_only=True)` refuses it, and `weights_only=False` would run whatever the pickle names. This
reader unpickles `*/data.pkl` with an allowlist: tensors (`torch._utils._rebuild_tensor_v2` over the storages in
`*/data/<key>`) become numpy arrays, `OrderedDict` a dict, and every other class the pickle names becomes an inert
`Opaque` record of its arguments and state (`plain` turns omegaconf containers among them into dicts and lists).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np

from calozoo.errors import CheckpointError

__all__ = ["Opaque", "read_torch_zip", "plain"]

_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                   "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
                   "BFloat16Storage": None}


class Opaque:
    """Stands in for any class a checkpoint names that is not a tensor: keeps its arguments and state, runs
    nothing."""

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        instance = super().__new__(cls)
        instance.args, instance.state = args, None
        return instance

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state


class _Dict(dict):
    """An OrderedDict's contents (a state_dict also pickles attributes, e.g. `_metadata`, which it keeps)."""


def _storage_type(name: str):
    dtype = _STORAGE_DTYPES[name]
    if dtype is None:
        raise CheckpointError(f"the checkpoint holds {name} tensors, which calozoo does not read.")
    return np.dtype(dtype).newbyteorder("<")


def _rebuild_tensor(storage, offset, size, stride, *unused):
    """A tensor as a numpy array (a copy), from its storage, offset, shape and strides (in elements)."""
    item = storage.itemsize
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * item for s in stride)).copy()


class _Unpickler(pickle.Unpickler):
    """The allowlist unpickler of the module docstring, over one zip archive."""

    def __init__(self, handle, archive: zipfile.ZipFile, root: str):
        super().__init__(handle)
        self.archive, self.root = archive, root

    def find_class(self, module, name):
        if (module, name) in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda data, *unused: data
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        if (module, name) == ("collections", "OrderedDict"):
            return _Dict
        return type(name, (Opaque,), {"qualname": f"{module}.{name}"})

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise CheckpointError(f"the checkpoint refers to {pid!r}, not a tensor storage.")
        _, kind, key, _, numel = pid
        data = self.archive.read(f"{self.root}/data/{key}")
        return np.frombuffer(data, dtype=_storage_type(kind), count=int(numel))


def read_torch_zip(path) -> object:
    """The object `torch.save` wrote to `path` (zip format), tensors as numpy arrays, other classes `Opaque`."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise CheckpointError(f"{path} is a zip file without one */data.pkl; not a PyTorch checkpoint.")
            root = pickles[0].rsplit("/", 1)[0]
            with archive.open(pickles[0]) as handle:
                return _Unpickler(handle, archive, root).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, KeyError, ValueError) as error:
        raise CheckpointError(f"{path} is not a PyTorch zip checkpoint calozoo can read: "
                              f"{type(error).__name__}: {error}") from None


def plain(value):
    """Dicts, lists and scalars from a read checkpoint's objects: omegaconf containers (their `_content`) and nodes
    (their `_val`) as what they hold; other `Opaque` records as None."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, Opaque):
        state = value.state[0] if isinstance(value.state, tuple) else value.state
        state = state if isinstance(state, dict) else {}
        if "_content" in state:
            return plain(state["_content"])
        return plain(state["_val"]) if "_val" in state else None
    return value
