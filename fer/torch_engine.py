"""PyTorch as the predictor's engine, on any device: called like fer.onnx_runtime.OnnxModel, with
(N, 1, 48, 48) float32 NumPy pixels, it returns (N, 7) float32 NumPy logits.

Kept in its own module because importing torch is the dearest thing the predictor can do (about 690 MB
of resident memory and over a second for the CUDA build): fer.predictor imports this only when the
model runs on torch.
"""

import copy

import numpy as np
import torch


class TorchEngine:
    """A fer.engines.Engine."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str | torch.device):
        self.device = str(device)
        self.torch_device = torch.device(device)
        # Half precision on GPUs (tensor cores, half the memory traffic); fp32 elsewhere.
        self.dtype = torch.float16 if self.torch_device.type == "cuda" else torch.float32
        # A copy: moving, casting and re-laying out a module happen in place, and the caller's model
        # (an exporter's, a trainer's) must stay as it was.
        self.model = (
            copy.deepcopy(model)
            .to(device=self.torch_device, dtype=self.dtype, memory_format=torch.channels_last)
            .eval()
        )

    @property
    def precision(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @torch.inference_mode()
    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(pixels).to(self.torch_device, self.dtype).contiguous(memory_format=torch.channels_last)
        return self.model(batch).float().cpu().numpy()
