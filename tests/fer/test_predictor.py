import io

import numpy as np
import pytest
from PIL import Image

from fer.detection.base import FramedDetector, box_iou
from fer.errors import FerError
from fer.images import read_image
from fer.labels import EMOTIONS
from fer.predictor import FaceResult, Predictor
from tests.conftest import run_python

ASTRONAUT_FACE = (177, 67, 93, 93)  # where the Haar cascade finds Eileen Collins' face


@pytest.fixture(scope="module")
def predictor(exported_weights):
    return Predictor.load(exported_weights, device="cpu")


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()  # (512, 512, 3) RGB photograph shipped inside scikit-image


def test_predict_faces_accepts_every_crop_kind(predictor):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    color = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
    pil = Image.fromarray(color)
    probabilities = predictor.predict_faces([gray, color, pil])
    assert probabilities.shape == (3, 7) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probabilities[1], probabilities[2], atol=1e-6)  # array and PIL: same face
    assert predictor.predict_faces([]).shape == (0, 7)


def test_batches_give_the_same_answer_as_single_faces(exported_weights):
    predictor = Predictor.load(exported_weights, device="cpu")
    predictor.batch_size = 3
    faces = list(np.random.default_rng(1).integers(0, 256, (8, 48, 48), dtype=np.uint8))
    together = predictor.predict_faces(faces)
    alone = np.concatenate([predictor.predict_faces([face]) for face in faces])
    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("tta", ["none", "flip", "tencrop"])
def test_every_tta_mode_gives_probabilities(exported_weights, tta):
    predictor = Predictor.load(exported_weights, device="cpu", tta=tta)
    probabilities = predictor.predict_faces([np.full((48, 48), 100, np.uint8)])
    assert probabilities.shape == (1, 7) and abs(probabilities.sum() - 1) < 1e-5


def test_flip_tta_of_a_symmetric_face_equals_no_tta(exported_weights):
    face = np.random.default_rng(2).integers(0, 256, (48, 24), dtype=np.uint8)
    symmetric = np.hstack([face, face[:, ::-1]])
    plain = Predictor.load(exported_weights, device="cpu", tta="none").predict_faces([symmetric])
    flipped = Predictor.load(exported_weights, device="cpu", tta="flip").predict_faces([symmetric])
    np.testing.assert_allclose(plain, flipped, atol=1e-5)


def test_predict_image_finds_the_face_in_a_photograph(predictor, astronaut):
    faces = predictor.predict_image(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert isinstance(face, FaceResult)
    assert box_iou(face.box, ASTRONAUT_FACE) > 0.6  # the default detector's (MTCNN), framed as FER2013 frames faces
    assert face.emotion in EMOTIONS and face.score == max(face.scores.values())
    assert abs(sum(face.scores.values()) - 1) < 1e-5
    assert face.to_dict()["box"] == list(face.box)


def test_bgr_frames_give_the_same_result_as_rgb(predictor, astronaut):
    rgb = predictor.predict_image(astronaut)[0]
    bgr = predictor.predict_image(astronaut[:, :, ::-1].copy(), color_order="BGR")[0]
    assert rgb.box == bgr.box
    assert rgb.scores == pytest.approx(bgr.scores, abs=1e-5)


def test_no_face_gives_an_empty_list_and_no_detect_uses_the_whole_image(predictor):
    blank = np.full((200, 300, 3), 127, np.uint8)
    assert predictor.predict_image(blank) == []
    (whole,) = predictor.predict_image(blank, detect=False)
    assert whole.box == (0, 0, 300, 200)


def test_paths_and_bytes_are_read(predictor, astronaut, tmp_path):
    path = tmp_path / "astronaut.jpg"
    Image.fromarray(astronaut).save(path, quality=95)
    from_path = predictor.predict_image(str(path))
    from_bytes = predictor.predict_image(path.read_bytes())
    assert len(from_path) == len(from_bytes) == 1 and from_path[0].box == from_bytes[0].box


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (60, 40), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate it 90 degrees
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    assert read_image(buffer.getvalue()).shape == (60, 40, 3)


def test_palette_transparent_and_16_bit_images_are_read():
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([255, 0, 0] * 256)
    assert read_image(palette)[0, 0].tolist() == [255, 0, 0]
    transparent = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert read_image(transparent)[0, 0].tolist() == [255, 255, 255]
    deep = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    assert read_image(deep).dtype == np.uint8 and read_image(deep)[0, 0] == 255


def test_unreadable_inputs_are_clear_errors(tmp_path):
    with pytest.raises(FerError, match="no such file"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FerError, match="cannot read"):
        read_image(tmp_path / "notes.txt")
    full = io.BytesIO()
    Image.new("RGB", (64, 64)).save(full, format="PNG")
    with pytest.raises(FerError, match="cannot read"):
        read_image(full.getvalue()[:60])  # truncated


def test_fer_weights_environment_variable_picks_the_default(exported_weights, monkeypatch):
    monkeypatch.setenv("FER_WEIGHTS", str(exported_weights))
    assert Predictor.load(device="cpu").card.arch == "vgg_slim"


def test_shipped_weights_predict_out_of_the_box(astronaut):
    predictor = Predictor.load(device="cpu")  # weights/ in the repository
    assert predictor.card.labels == list(EMOTIONS)
    (face,) = predictor.predict_image(astronaut)
    # The astronaut smiles broadly: the shipped model must say so, and be sure of it.
    assert face.emotion == "happy" and face.score > 0.8, (face.emotion, face.score)


def test_every_crop_is_cut_from_one_grayscale_frame_as_classification_expects(exported_weights, predictor, astronaut):
    """Gray once, then crop: the same pixels as cropping the color image and turning each crop gray
    (a detector that gives boxes); the same crops whichever order the color channels come in (any)."""
    from fer.preprocess import to_gray48

    boxes, pixels, _ = Predictor.load(exported_weights, device="cpu", detector="haar").find_faces(astronaut)
    expected = np.stack([to_gray48(astronaut[y : y + h, x : x + w]) for x, y, w, h in boxes])
    np.testing.assert_array_equal(pixels, expected)
    boxes, pixels, _ = predictor.find_faces(astronaut)  # the default detector aligns its crops itself
    bgr_boxes, bgr_pixels, _ = predictor.find_faces(np.ascontiguousarray(astronaut[:, :, ::-1]), color_order="BGR")
    assert bgr_boxes == boxes
    np.testing.assert_array_equal(bgr_pixels, pixels)


class RecordingDetector(FramedDetector):
    """Finds one face in the middle and remembers what it was shown: a detector of the user's own,
    which FramedDetector makes whole."""

    name = "recording"

    def __init__(self, uses_color: bool):
        self.uses_color, self.seen = uses_color, []

    def detect(self, image):
        self.seen.append(image.shape)
        height, width = image.shape[:2]
        return [(width // 4, height // 4, width // 2, height // 2)]


@pytest.mark.parametrize("uses_color, shape", [(False, (512, 512)), (True, (512, 512, 3))])
def test_a_detector_gets_the_grayscale_frame_unless_it_looks_at_color(exported_weights, astronaut, uses_color, shape):
    detector = RecordingDetector(uses_color)
    predictor = Predictor.load(exported_weights, device="cpu", detector=detector)
    (face,) = predictor.predict_image(astronaut)
    assert detector.seen == [shape] and face.box == (128, 128, 256, 256)


def test_face_results_give_their_probabilities_back_in_emotions_order(predictor, astronaut):
    (face,) = predictor.predict_image(astronaut)
    assert face.probabilities.shape == (7,) and face.probabilities.dtype == np.float32
    assert [float(p) for p in face.probabilities] == pytest.approx([face.scores[e] for e in EMOTIONS])
    assert EMOTIONS[int(face.probabilities.argmax())] == face.emotion


def test_the_torch_engine_leaves_the_callers_model_as_it_was(exported_weights):
    import torch

    from fer.torch_engine import TorchEngine
    from fer.weights import load_model

    model, _ = load_model(exported_weights)
    before = {name: (p.dtype, p.is_contiguous(), p.clone()) for name, p in model.state_dict().items()}
    TorchEngine(model, "cpu")  # casts and re-lays out its own copy (channels_last)
    for name, p in model.state_dict().items():
        dtype, contiguous, values = before[name]
        assert p.dtype == dtype and p.is_contiguous() == contiguous and torch.equal(p, values), name


def _loads_torch(device: str) -> list[str]:
    code = (
        "import sys, numpy as np; from fer.predictor import Predictor; "
        f"p = Predictor.load(device={device!r}); p.predict_pixels(np.zeros((3, 48, 48), np.uint8), 'tencrop'); "
        "print(p.backend, p.device, 'torch' in sys.modules)"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_int8_variant_loads_and_predicts_without_importing_torch():
    assert _loads_torch("cpu") == ["onnxruntime-int8", "cpu", "False"]


def test_auto_needs_no_torch_to_know_a_machine_without_a_gpu_runs_on_the_cpu():
    from fer.device import gpu_may_be_present

    if gpu_may_be_present():
        pytest.skip("this machine may have a GPU: torch must be asked")
    assert _loads_torch("auto") == ["onnxruntime-int8", "cpu", "False"]


def test_a_detector_is_chosen_by_name_and_a_changed_model_file_fails_at_load(exported_weights, monkeypatch, tmp_path):
    import fer.detection.shipped

    assert Predictor.load(exported_weights, device="cpu", detector="haar").detector.name == "haar"
    with pytest.raises(ValueError, match="unknown face detector 'yolo'"):
        Predictor.load(exported_weights, device="cpu", detector="yolo")
    for path in fer.detection.shipped.FOLDER.glob("*.onnx"):
        (tmp_path / path.name).write_bytes(path.read_bytes()[:-1] + b"x")
    monkeypatch.setattr(fer.detection.shipped, "FOLDER", tmp_path)
    with pytest.raises(FerError, match="not the face detector model fer was measured with"):
        Predictor.load(exported_weights, device="cpu", detector="mtcnn")


def test_each_call_may_name_its_own_detector_and_each_is_created_once(exported_weights, astronaut):
    predictor = Predictor.load(exported_weights, device="cpu", detector="haar")
    for name in ("yunet", "blazeface", "mtcnn"):
        (face,) = predictor.predict_image(astronaut, detector=name)
        assert box_iou(face.box, ASTRONAUT_FACE) > 0.4, name  # each frames the face its own way
        assert predictor.detector_named(name) is predictor.detector_named(name)
    assert predictor.detector_named(None) is predictor.detector and predictor.detector.name == "haar"


def test_a_face_crop_without_a_found_face_is_classified_whole_and_says_so(predictor):
    """FER2013's own crops: MTCNN finds no face in some of them shown alone (this noise, none at all)."""
    crop = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    (face,) = predictor.predict_image(crop)
    assert face.box == (0, 0, 48, 48) and face.detected is False and face.to_dict()["detected"] is False
    assert predictor.predict_image(crop, face_crop_fallback=False) == []
    # A photo of a scene (4:3, or larger than a crop) with no face in it stays without one.
    for shape in [(480, 640), (600, 600), (48, 64)]:
        assert predictor.predict_image(np.zeros(shape, np.uint8)) == [], shape
    assert predictor.predict_image(np.zeros((400, 330), np.uint8))[0].detected is False


@pytest.mark.parametrize("detector", ["mtcnn", "yunet", "haar", "blazeface"])
def test_images_of_any_shape_give_faces_or_none_never_an_error(exported_weights, detector):
    predictor = Predictor.load(exported_weights, device="cpu", detector=detector)
    rng = np.random.default_rng(0)
    # Lines and slivers longer than the detectors' 1280-pixel working size once crashed OpenCV's resize
    # (a 5000x1 image scaled to 1280x0).
    for shape in [(1, 1), (5000, 1, 3), (1, 5000), (5000, 2), (3, 4000, 3), (11, 11), (12, 12), (1281, 12, 3)]:
        boxes, crops, _ = predictor.find_faces(rng.integers(0, 256, shape, dtype=np.uint8), face_crop_fallback=False)
        assert boxes == [] and crops.shape == (0, 48, 48)


@pytest.mark.parametrize("detector", ["mtcnn", "yunet", "haar", "blazeface"])
def test_several_images_at_once_give_the_faces_and_crops_of_each_alone(exported_weights, detector, astronaut):
    predictor = Predictor.load(exported_weights, device="cpu", detector=detector)
    images = [astronaut, np.zeros((240, 320, 3), np.uint8), astronaut[::2, ::2].copy(), astronaut[:, :, 0].copy()]
    for detect in (True, False):
        together = predictor.find_faces_many(images, detect)
        assert len(together) == len(images)
        for image, (boxes, crops, detected) in zip(images, together):
            alone_boxes, alone_crops, alone_detected = predictor.find_faces(image, detect)
            assert detected == alone_detected
            assert boxes == alone_boxes
            np.testing.assert_array_equal(crops, alone_crops)
    assert len(predictor.find_faces_many(images[:1])[0][0]) == 1  # the astronaut is found at all
    assert predictor.find_faces_many([]) == []


def test_faces_come_largest_first_each_with_its_own_scores_keyed_in_emotions_order(predictor, astronaut):
    """Two copies of the astronaut's head, the smaller one on the left (found first by a scan), in one
    picture: the results are largest first, and each face's scores are its own crop's."""
    import cv2

    head = astronaut[30:250, 130:330]  # (220, 200, 3): the face with room around it
    small = cv2.resize(head, (120, 132), interpolation=cv2.INTER_AREA)
    picture = np.full((300, 520, 3), 128, np.uint8)
    picture[20:152, 10:130] = small
    picture[40:260, 300:500] = head
    faces = predictor.predict_image(picture)
    assert len(faces) == 2
    areas = [face.box[2] * face.box[3] for face in faces]
    assert areas[0] > areas[1] and faces[0].box[0] > 250 > faces[1].box[0]
    _, crops, _ = predictor.find_faces(picture)
    expected = predictor.predict_pixels(crops)
    for face, row in zip(faces, expected):
        assert list(face.scores) == list(EMOTIONS)
        assert [face.scores[e] for e in EMOTIONS] == pytest.approx(row.tolist(), abs=1e-6)
        assert face.emotion == EMOTIONS[int(row.argmax())] and face.score == pytest.approx(float(row.max()))


def test_face_results_pair_each_box_with_its_own_row():
    from fer.predictor import face_results

    rows = np.eye(7, dtype=np.float32)[[3, 5]] * 0.9 + 0.1 / 7
    results = face_results([(50, 50, 100, 100), (0, 0, 40, 40)], rows)
    assert [r.box for r in results] == [(50, 50, 100, 100), (0, 0, 40, 40)]
    assert [r.emotion for r in results] == ["happy", "surprise"]
    assert [list(r.scores) for r in results] == [list(EMOTIONS)] * 2
    assert (
        results[1].scores["surprise"] == pytest.approx(0.9 + 0.1 / 7)
        and results[1].score == results[1].scores["surprise"]
    )
