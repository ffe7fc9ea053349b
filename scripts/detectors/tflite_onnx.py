"""A TFLite model's float graph as an ONNX model, so that ONNX Runtime (already fer's CPU engine) runs
it: no TensorFlow or TFLite runtime is installed or loaded.

    model = tflite_to_onnx(Path("face_detection_full_range.tflite").read_bytes())

Only the operators of small vision networks such as BlazeFace are supported: CONV_2D,
DEPTHWISE_CONV_2D, ADD, RELU, PAD, MAX_POOL_2D, RESIZE_BILINEAR, RESHAPE, CONCATENATION, and
DEQUANTIZE of float16 constants (folded at conversion). Anything else is a clear error.

TFLite lays images out NHWC; the ONNX graph is NCHW, with a free batch size (the TFLite file fixes
it at 1): its input is named `image`, shape (batch, channels, height, width). Tensors are turned
back to NHWC before a RESHAPE, so outputs keep TFLite's element order. tests/fer/test_tflite_onnx.py
checks the outputs against the TFLite interpreter.
"""

from typing import TypeVar

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

from fer.errors import FerError

INPUT_NAME = "image"
OPSET = 17
_OPERATORS = {code: name for name, code in vars(tflite.BuiltinOperator).items() if not name.startswith("_")}
_NUMPY_TYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT64: np.int64,
}
Operator = tflite.Operator
ConvOptions = tflite.Conv2DOptions | tflite.DepthwiseConv2DOptions
T = TypeVar("T")
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1, -2: 3, -3: 2, -4: 0}


class TfliteConversionError(FerError):
    pass


def tflite_to_onnx(data: bytes, graph_name: str = "tflite", free_size: bool = False) -> onnx.ModelProto:
    """The first subgraph of a TFLite flatbuffer as a checked ONNX model (see the module's doc).
    `free_size`: the input's height and width are left free, for fully convolutional networks. Padding
    is worked out for the file's own size, so other sizes must keep its parity at every stride (for
    BlazeFace: multiples of 32), and the outputs' declared shapes are those of the file's size."""
    if data[4:8] != b"TFL3":  # the flatbuffer's file identifier
        raise TfliteConversionError("not a TFLite model (no TFL3 identifier)")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        graph = model.Subgraphs(0)
    except Exception as error:  # flatbuffers raises assorted errors on damaged bytes
        raise TfliteConversionError(f"not a readable TFLite model ({error})") from None
    if graph is None:
        raise TfliteConversionError("the TFLite model has no graph")
    builder = _GraphBuilder(model, graph, free_size)
    for index in range(graph.OperatorsLength()):
        builder.add_operator(graph.Operators(index))
    onnx_model = builder.finish(graph_name)
    onnx.checker.check_model(onnx_model)
    return onnx_model


class _GraphBuilder:
    def __init__(self, model: tflite.Model, graph: tflite.SubGraph, free_size: bool) -> None:
        self.model, self.graph = model, graph
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.constants: dict[int, np.ndarray] = {}  # TFLite tensor -> value, for weights and shapes
        self.values: dict[int, str] = {}  # TFLite tensor -> ONNX value (NCHW when 4-D)
        self.count = 0
        self.free_size = free_size
        for index in range(graph.TensorsLength()):
            tensor = graph.Tensors(index)
            data = model.Buffers(tensor.Buffer()).DataAsNumpy()
            if isinstance(data, np.ndarray) and data.size:
                if tensor.Type() not in _NUMPY_TYPES:
                    raise TfliteConversionError(f"constant {self.name(index)} has an unsupported type")
                self.constants[index] = data.view(_NUMPY_TYPES[tensor.Type()]).reshape(self.shape(index))
        if graph.InputsLength() != 1:
            raise TfliteConversionError(f"the model has {graph.InputsLength()} inputs; one image is supported")
        source = graph.Inputs(0)
        if len(self.shape(source)) != 4:
            raise TfliteConversionError("the model's input is not an image (NHWC)")
        _, height, width, channels = self.shape(source)
        self.values[source] = INPUT_NAME
        dims = ["batch", channels, "height", "width"] if free_size else ["batch", channels, height, width]
        self.inputs = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, dims)]

    # ---- tensors ------------------------------------------------------------------------------------

    def name(self, index: int) -> str:
        return self.graph.Tensors(index).Name().decode()

    def shape(self, index: int) -> tuple[int, ...]:
        return tuple(int(v) for v in self.graph.Tensors(index).ShapeAsNumpy())

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def constant(self, array: np.ndarray, prefix: str) -> str:
        name = self.fresh(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, kind: str, inputs: list[str], **attributes: object) -> str:
        output = self.fresh(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [output], **attributes))
        return output

    def activation(self, value: str, fused: int) -> str:
        if fused == tflite.ActivationFunctionType.NONE:
            return value
        if fused == tflite.ActivationFunctionType.RELU:
            return self.node("Relu", [value])
        if fused == tflite.ActivationFunctionType.RELU6:
            return self.node("Clip", [value, self.constant(np.float32(0), "min"), self.constant(np.float32(6), "max")])
        raise TfliteConversionError(f"fused activation {fused} is not supported")

    @staticmethod
    def same_pads(
        size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...] = (1, 1)
    ) -> list[int]:
        """TensorFlow's SAME padding as ONNX pads: the odd pixel goes after, as in TFLite."""
        begins, ends = [], []
        for extent, k, s, d in zip(size, kernel, stride, dilation):
            total = max((-(-extent // s) - 1) * s + (k - 1) * d + 1 - extent, 0)
            begins.append(total // 2)
            ends.append(total - total // 2)
        return begins + ends

    @staticmethod
    def options(op: Operator, kind: type[T]) -> T:
        table = op.BuiltinOptions()
        options = kind()
        options.Init(table.Bytes, table.Pos)
        return options

    # ---- operators ----------------------------------------------------------------------------------

    def add_operator(self, op: Operator) -> None:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        kind = _OPERATORS.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        inputs = [op.Inputs(i) for i in range(op.InputsLength())]
        output = op.Outputs(0)
        handler = getattr(self, f"_{kind.lower()}", None)
        if handler is None:
            raise TfliteConversionError(f"TFLite operator {kind} is not supported")
        result = handler(op, inputs, output)
        if result is not None:
            self.values[output] = result

    def _dequantize(self, op: Operator, inputs: list[int], output: int) -> None:
        self.constants[output] = self.constants[inputs[0]].astype(np.float32)  # folded: float16 weights

    def _conv_2d(self, op: Operator, inputs: list[int], output: int) -> str:
        options = self.options(op, tflite.Conv2DOptions)
        weight = self.constants[inputs[1]].transpose(0, 3, 1, 2)  # OHWI -> OIHW
        return self._convolution(inputs, options, weight, group=1)

    def _depthwise_conv_2d(self, op: Operator, inputs: list[int], output: int) -> str:
        options = self.options(op, tflite.DepthwiseConv2DOptions)
        weight = self.constants[inputs[1]].transpose(3, 0, 1, 2)  # 1HW(C*m) -> (C*m)1HW
        return self._convolution(inputs, options, weight, group=self.shape(inputs[0])[3])

    def _convolution(self, inputs: list[int], options: ConvOptions, weight: np.ndarray, group: int) -> str:
        stride = (options.StrideH(), options.StrideW())
        dilation = (options.DilationHFactor(), options.DilationWFactor())
        kernel = tuple(weight.shape[2:])
        same = options.Padding() == tflite.Padding.SAME
        pads = self.same_pads(self.shape(inputs[0])[1:3], kernel, stride, dilation) if same else [0, 0, 0, 0]
        operands = [self.values[inputs[0]], self.constant(weight, "weight")]
        if len(inputs) > 2 and inputs[2] >= 0:
            operands.append(self.constant(self.constants[inputs[2]].astype(np.float32), "bias"))
        value = self.node("Conv", operands, strides=list(stride), dilations=list(dilation), pads=pads, group=group)
        return self.activation(value, options.FusedActivationFunction())

    def _add(self, op: Operator, inputs: list[int], output: int) -> str:
        options = self.options(op, tflite.AddOptions)
        value = self.node("Add", [self.values[inputs[0]], self.values[inputs[1]]])
        return self.activation(value, options.FusedActivationFunction())

    def _relu(self, op: Operator, inputs: list[int], output: int) -> str:
        return self.node("Relu", [self.values[inputs[0]]])

    def _pad(self, op: Operator, inputs: list[int], output: int) -> str:
        paddings = self.constants[inputs[1]]  # (4, 2), NHWC
        nchw = [0, 3, 1, 2]
        pads = [int(paddings[axis, 0]) for axis in nchw] + [int(paddings[axis, 1]) for axis in nchw]
        return self.node("Pad", [self.values[inputs[0]], self.constant(np.array(pads, np.int64), "pads")])

    def _max_pool_2d(self, op: Operator, inputs: list[int], output: int) -> str:
        options = self.options(op, tflite.Pool2DOptions)
        kernel = (options.FilterHeight(), options.FilterWidth())
        stride = (options.StrideH(), options.StrideW())
        same = options.Padding() == tflite.Padding.SAME
        pads = self.same_pads(self.shape(inputs[0])[1:3], kernel, stride) if same else [0, 0, 0, 0]
        value = self.node(
            "MaxPool", [self.values[inputs[0]]], kernel_shape=list(kernel), strides=list(stride), pads=pads
        )
        return self.activation(value, options.FusedActivationFunction())

    def _resize_bilinear(self, op: Operator, inputs: list[int], output: int) -> str:
        options = self.options(op, tflite.ResizeBilinearOptions)
        if options.AlignCorners():
            mode = "align_corners"
        elif options.HalfPixelCenters():
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        height, width = self.shape(inputs[0])[1:3]
        out_height, out_width = (int(v) for v in self.constants[inputs[1]])
        scales = np.array([1, 1, out_height / height, out_width / width], np.float32)
        return self.node(
            "Resize",
            [self.values[inputs[0]], "", self.constant(scales, "scales")],
            mode="linear",
            coordinate_transformation_mode=mode,
        )

    def _reshape(self, op: Operator, inputs: list[int], output: int) -> str:
        value = self.values[inputs[0]]
        if len(self.shape(inputs[0])) == 4:  # back to NHWC, the element order TFLite reshapes in
            value = self.node("Transpose", [value], perm=[0, 2, 3, 1])
        target = self.shape(output)
        if len(target) < 2:
            raise TfliteConversionError("a RESHAPE that drops the batch dimension is not supported")
        # The batch dimension stays as it is (0); one inner dimension is inferred (-1).
        new_shape = np.array([0, -1, *target[2:]], np.int64)
        return self.node("Reshape", [value, self.constant(new_shape, "shape")])

    def _concatenation(self, op: Operator, inputs: list[int], output: int) -> str:
        options = self.options(op, tflite.ConcatenationOptions)
        axis = options.Axis()
        if len(self.shape(output)) == 4:
            axis = _NHWC_TO_NCHW_AXIS[axis]
        value = self.node("Concat", [self.values[index] for index in inputs], axis=axis)
        return self.activation(value, options.FusedActivationFunction())

    # ---- the model ----------------------------------------------------------------------------------

    def finish(self, graph_name: str) -> onnx.ModelProto:
        outputs = []
        for i in range(self.graph.OutputsLength()):
            index = self.graph.Outputs(i)
            name = self.name(index)
            self.nodes.append(helper.make_node("Identity", [self.values[index]], [name]))
            shape = self.shape(index)
            inner = [f"{name}_{i}" for i in range(1, len(shape))] if self.free_size else list(shape[1:])
            dims = ["batch", *inner]
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
        graph = helper.make_graph(self.nodes, graph_name, self.inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fer")
        model.ir_version = 8  # readable by every ONNX Runtime fer supports
        return model
