"""Read a PyTorch state dict saved in torch's legacy (pre-1.6, not zip) format as NumPy arrays,
without torch and without running the pickle's code: the unpickler builds only ordered dicts and
float tensors, and refuses every other class a file names. That is how scripts/detectors/convert.py
reads MTCNN's weights from the facenet-pytorch package to make the ONNX files fer ships.

The legacy format is five things one after another: four pickles (a magic number, a protocol
version, a dict of sizes, then the object itself, whose tensors point at storages by key), a pickled
list of those storage keys, and each storage's raw bytes preceded by its element count (8 bytes,
little-endian).
"""

import collections
import pickle
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fer.errors import FerError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_STORAGE_TYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64}


class TorchPickleError(FerError):
    pass


class _Storage:
    def __init__(self, key: str, dtype: type, count: int) -> None:
        self.key, self.dtype, self.count = key, dtype, count
        self.array: np.ndarray | None = None  # filled in once the raw bytes are read


class _LazyTensor:
    """A tensor whose storage's bytes come after the pickle that names it."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialize(self) -> np.ndarray:
        flat = self.storage.array
        itemsize = flat.itemsize
        if self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride) if n) >= max(len(flat), 1):
            raise TorchPickleError(f"a tensor reaches past the end of storage {self.storage.key}")
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :], shape=self.size, strides=[s * itemsize for s in self.stride], writeable=False
        )
        return np.array(view)  # a copy: owns its memory, laid out contiguously


def _rebuild_tensor(storage: object, offset: int, size: tuple, stride: tuple, *_ignored: object) -> _LazyTensor:
    if not isinstance(storage, _Storage):
        raise TorchPickleError("a tensor without a storage")
    return _LazyTensor(storage, offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        raise TorchPickleError(f"the file names {module}.{name}, which a plain state dict never holds")

    def persistent_load(self, pid: object) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise TorchPickleError(f"unexpected persistent id {pid!r:.80}")
        _, dtype, key, _location, count = pid[:5]
        if dtype not in _STORAGE_TYPES.values():
            raise TorchPickleError(f"unsupported storage type {dtype!r:.80}")
        if key not in self.storages:
            self.storages[key] = _Storage(key, dtype, int(count))
        return self.storages[key]


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """{name: array} of a state dict in torch's legacy format (see the module's doc)."""
    try:
        with open(path, "rb") as file:
            if pickle.load(file) != MAGIC_NUMBER or pickle.load(file) != PROTOCOL_VERSION:
                raise TorchPickleError(f"{path} is not a PyTorch file in the legacy format")
            sizes = pickle.load(file)
            if not isinstance(sizes, dict) or not sizes.get("little_endian", False):
                raise TorchPickleError(f"{path} was saved on a big-endian machine")
            storages: dict[str, _Storage] = {}
            state = _RestrictedUnpickler(file, storages).load()
            keys = pickle.load(file)
            for key in keys:
                storage = storages.get(key)
                if storage is None:
                    raise TorchPickleError(f"{path} lists a storage no tensor uses")
                (count,) = struct.unpack("<q", file.read(8))
                data = file.read(count * np.dtype(storage.dtype).itemsize)
                if count != storage.count or len(data) != count * np.dtype(storage.dtype).itemsize:
                    raise TorchPickleError(f"{path} is cut short or damaged")
                storage.array = np.frombuffer(data, storage.dtype)
    except TorchPickleError:
        raise
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError, AttributeError) as error:
        raise TorchPickleError(f"{path} is not a readable PyTorch state dict ({error})") from None
    if not isinstance(state, dict) or not all(isinstance(v, _LazyTensor) for v in state.values()):
        raise TorchPickleError(f"{path} does not hold a state dict of tensors")
    if any(tensor.storage.array is None for tensor in state.values()):
        raise TorchPickleError(f"{path} lacks the bytes of some tensors")
    return {name: tensor.materialize() for name, tensor in state.items()}
