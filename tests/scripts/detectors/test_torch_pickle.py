"""scripts/detectors/torch_pickle.py: PyTorch state dicts in the legacy format read without torch, and files that
try to run code or are damaged refused with a clear error."""

import pickle

import numpy as np
import pytest
import torch

from scripts.detectors.torch_pickle import TorchPickleError, read_state_dict


def save_legacy(state: dict, path) -> None:
    torch.save(state, path, _use_new_zipfile_serialization=False)


def test_it_reads_what_torch_saved_in_the_legacy_format(tmp_path):
    transposed = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()  # strided, not contiguous
    shared = torch.linspace(-1, 1, 10)
    state = {
        "weight": torch.randn(4, 3, 2, 2),
        "view": transposed,
        "head": shared[:4],
        "tail": shared[6:],
        "step": torch.tensor(7),
    }
    path = tmp_path / "state.pt"
    save_legacy(state, path)
    read = read_state_dict(path)
    assert list(read) == list(state)
    for name, tensor in state.items():
        assert read[name].dtype == tensor.numpy().dtype
        np.testing.assert_array_equal(read[name], tensor.numpy())


def test_a_pickle_that_names_anything_but_tensors_is_refused_without_running_it(tmp_path):
    class RunsCode:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as file:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, file)
        pickle.dump({"weight": RunsCode()}, file)
        pickle.dump([], file)
    with pytest.raises(TorchPickleError, match="builtins.print"):
        read_state_dict(path)


def test_damaged_files_are_clear_errors(tmp_path):
    good = tmp_path / "good.pt"
    save_legacy({"weight": torch.ones(100)}, good)
    data = good.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[:-40])
    with pytest.raises(TorchPickleError, match="cut short or damaged"):
        read_state_dict(cut)
    modern = tmp_path / "zip.pt"
    torch.save({"weight": torch.ones(3)}, modern)  # the zip format, not the legacy one
    with pytest.raises(TorchPickleError, match="not a PyTorch file in the legacy format|not a readable"):
        read_state_dict(modern)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(TorchPickleError):
        read_state_dict(noise)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(TorchPickleError):
        read_state_dict(empty)
