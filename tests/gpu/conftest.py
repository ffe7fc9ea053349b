"""The CUDA paths, checked on a GPU machine by `make gpu-check` (scripts/gpu_check.py).

Every test here runs on `device`: CUDA where a GPU is present. In the dry run (FER_GPU_DRY_RUN=1,
which `make gpu-check DRY_RUN=1` sets and CI runs) the same tests run on the CPU, so that they and
the script cannot rot between the rare GPU runs; a check that means something only on a GPU (a
precision, a backend name) is made where `device == "cuda"`. Elsewhere they are skipped. `make test`
deselects them (the `gpu` marker).
"""

import os

import pytest
import torch

DRY_RUN = os.environ.get("FER_GPU_DRY_RUN") == "1"


@pytest.fixture(scope="session")
def device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if DRY_RUN:
        return "cpu"
    pytest.skip("needs a CUDA GPU (make gpu-check DRY_RUN=1 runs these tests on the CPU)")
