"""MTCNN's three networks in torch, for a GPU: the same layers (fer.detection.mtcnn_layers) and
weights as the shipped ONNX graphs the CPU runs (their initializers, read with the `onnx` package),
called the same way, (N, 3, H, W) float32 NumPy in, NumPy out.

Kept apart from fer/detection/mtcnn.py so that the CPU's detector never imports torch
(fer/torch_engine.py says what that saves). Float32 throughout: the networks are tiny, and their
scores are compared with thresholds tuned in float32.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fer.detection.mtcnn_layers import HEADS, LAYERS


class TorchNetwork:
    def __init__(self, network: str, parameters: dict[str, np.ndarray], device: str | torch.device):
        self.device = torch.device(device)
        self.layers, self.heads = LAYERS[network], HEADS[network]
        self.parameters = {
            name: torch.from_numpy(np.ascontiguousarray(value, np.float32)).to(self.device)
            for name, value in parameters.items()
        }

    @classmethod
    def from_onnx(cls, network: str, path: Path, device: str | torch.device) -> "TorchNetwork":
        """The network of a shipped ONNX file (fer.detection.shipped.model_file checked it)."""
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(path)).graph
        # The graph keeps a PReLU's slopes as (C, 1, 1) to broadcast over maps; torch wants (C,).
        parameters = {item.name: numpy_helper.to_array(item).copy() for item in graph.initializer}  # writable
        for name in [name for name in parameters if name.startswith("prelu")]:
            parameters[name] = parameters[name].reshape(-1)
        return cls(network, parameters, device)

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> list[np.ndarray]:
        value = torch.from_numpy(np.ascontiguousarray(images, np.float32)).to(self.device)
        for kind, option in self.layers:
            if kind in ("conv", "dense"):
                value = self._linear(option, value)
            elif kind == "prelu":
                value = F.prelu(value, self.parameters[f"{option}.weight"])
            elif kind == "pool":
                size, stride = option
                value = F.max_pool2d(value, size, stride, ceil_mode=True)
            elif kind == "flatten":  # width-major, as the Caffe models' dense layers expect (mtcnn_layers)
                value = value.permute(0, 3, 2, 1).flatten(1)
        outputs = []
        for _, layer, softmax in self.heads:
            head = self._linear(layer, value)
            outputs.append(head.softmax(1) if softmax else head)
        return [output.cpu().numpy() for output in outputs]

    def _linear(self, prefix: str, value: torch.Tensor) -> torch.Tensor:
        weight, bias = self.parameters[f"{prefix}.weight"], self.parameters[f"{prefix}.bias"]
        return F.conv2d(value, weight, bias) if weight.ndim == 4 else F.linear(value, weight, bias)
