"""Int8 ONNX: the fast CPU variant of an exported model.

Static quantization (ONNX Runtime, QDQ format): 7-bit weights per output channel (int8 storage,
values in [-64, 64]), uint8 activations whose ranges are calibrated on faces from the Training split,
never on validation faces. On a CPU with AVX-512 VNNI it runs about 3x faster than the float32 graph
(docs/benchmarks.md); its accuracy is measured on validation at export and recorded in the model
card, with the CPU it was measured on, so users can see what it costs.

Why 7 bits: on a CPU without VNNI (AVX2, or AVX-512 without it) ONNX Runtime's uint8 x int8 kernels
add two products into an int16 with saturation (VPMADDUBSW). With 8-bit weights a pair can reach
255 x 127 x 2 = 64,770 and is clipped at 32,767: fer-v2's first int8 export lost 1.7 points there
(68.49% against 70.16% float32 on an AVX2-only EPYC) while it lost 0.14 on a CPU with VNNI. With
`reduce_range` the pair stays within 255 x 64 x 2 = 32,640, so no CPU's kernel can saturate; ONNX
Runtime documents this remedy. `largest_pair_sum` checks it on the written file.
"""

import tempfile
from pathlib import Path

import numpy as np

CALIBRATION_FACES = 1024  # stratified Training faces; more changed no prediction in our checks
CALIBRATION_BATCH = 64
CALIBRATION_SEED = 0
WEIGHT_BITS = 7  # reduce_range: weights in [-64, 64], see the module's docstring
INT16_MAX = 32_767  # what VPMADDUBSW's pairwise sums saturate at
UINT8_MAX = 255  # the largest activation
DESCRIPTION = (
    f"ONNX Runtime static quantization, QDQ: {WEIGHT_BITS}-bit weights per channel (reduce_range, so that "
    f"no CPU's int8 kernel saturates), uint8 activations calibrated (min/max) on {CALIBRATION_FACES} "
    f"stratified Training faces"
)


def calibration_faces(data: str) -> np.ndarray:
    """(N, 1, 48, 48) float32 pixels 0..255 from the Training split."""
    from fer.datasets import TRAIN, load_splits, select_split, stratified_subset

    train = select_split(load_splits(data), TRAIN, data)
    subset = stratified_subset(train, CALIBRATION_FACES, CALIBRATION_SEED)
    return subset.images[:, None].astype(np.float32)


def quantize_onnx(float_path: Path, int8_path: Path, faces: np.ndarray) -> None:
    """Write the int8 version of the float32 ONNX model at `float_path`."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Faces(CalibrationDataReader):
        def __init__(self) -> None:
            starts = range(0, len(faces), CALIBRATION_BATCH)
            self.batches = iter(faces[start : start + CALIBRATION_BATCH] for start in starts)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"pixels": batch}

    with tempfile.TemporaryDirectory() as scratch:
        # Shape inference and graph folding first, as ONNX Runtime's quantization guide advises: it
        # lets Conv+BatchNorm fold before the weights are rounded.
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared))
        quantize_static(
            str(prepared),
            str(int8_path),
            Faces(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            reduce_range=True,
        )


def largest_pair_sum(int8_path: Path) -> int:
    """The largest |a1 x w1 + a2 x w2| a uint8 x int8 kernel can meet in this model: 2 x 255 x the
    largest int8 weight magnitude. At most INT16_MAX, it cannot saturate VPMADDUBSW on any CPU."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(int8_path))
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    largest = 0
    for node in model.graph.node:
        weight = initializers.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if weight is not None and weight.data_type == onnx.TensorProto.INT8:
            largest = max(largest, int(np.abs(numpy_helper.to_array(weight).astype(np.int32)).max()))
    return 2 * UINT8_MAX * largest


def weight_bits(int8_path: Path) -> int:
    """The bits the int8 weights of this model use: 7 when none exceeds 64 in magnitude, else 8."""
    return 7 if largest_pair_sum(int8_path) <= 2 * UINT8_MAX * 64 else 8
