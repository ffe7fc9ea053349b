"""fer/mtcnn.py: the default face detector finds faces in real and generated photos, its networks
(ONNX Runtime's for the CPU, torch's for a GPU) compute what facenet-pytorch's do from the same
weights, several photos at once give the faces each gives alone, and a missing or changed weights file
is a clear error."""

import cv2
import numpy as np
import pytest
from skimage import data

import fer.mtcnn
from fer.errors import FerError
from fer.faces import Framing, HaarFaceDetector, box_iou
from fer.mtcnn import MtcnnFaceDetector, load_networks, load_weights, weights_folder
from tests.conftest import astronaut_scene_counts, run_python


@pytest.fixture(scope="module")
def detector():
    return MtcnnFaceDetector()


@pytest.fixture(scope="module")
def torch_networks():
    """The torch networks a GPU runs, here on the CPU (device "cpu" would choose ONNX Runtime).
    torch and facenet-pytorch are imported only where a test compares with them: they cost 4 CPU
    seconds, which `make mutate` would pay again for each of MTCNN's 680 geometry mutants."""
    from fer.mtcnn_torch import TorchNetwork

    return {name: TorchNetwork(name, parameters, "cpu") for name, parameters in load_weights().items()}


@pytest.mark.parametrize("engine", ["onnxruntime", "torch"])
def test_its_networks_compute_what_facenet_pytorchs_compute(engine, torch_networks):
    import torch
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

    networks = load_networks(threads=1) if engine == "onnxruntime" else torch_networks
    rng = np.random.default_rng(0)
    for name, network, shape in [
        ("pnet", PNet(), (2, 3, 37, 51)),
        ("rnet", RNet(), (5, 3, 24, 24)),
        ("onet", ONet(), (5, 3, 48, 48)),
    ]:
        image = rng.uniform(-1, 1, shape).astype(np.float32)
        with torch.no_grad():
            expected = network.eval()(torch.from_numpy(image))
        outputs = networks[name](image)
        assert len(outputs) == len(expected)
        for ours, theirs in zip(outputs, expected):
            np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)


def test_several_photos_at_once_give_the_faces_each_gives_alone(detector, torch_networks):
    photo = data.astronaut()
    photos = [  # two sizes, so P-Net runs both stacked and alone; a blank photo and a tiny one find nothing
        photo,
        cv2.resize(photo, (640, 480)),
        np.ascontiguousarray(cv2.resize(photo, (640, 480))[:, ::-1]),
        np.zeros((240, 320, 3), np.uint8),
        np.zeros((5, 5, 3), np.uint8),
        cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY),
    ]
    on_torch = MtcnnFaceDetector(networks=torch_networks)
    for together in (detector.detections_many(photos), on_torch.detections_many(photos)):
        assert [len(found) for found in together] == [1, 1, 1, 0, 0, 1]
        for photo_alone, found in zip(photos, together):
            for alone, with_others in zip(detector.detections(photo_alone), found):
                np.testing.assert_allclose(with_others.box, alone.box, atol=0.01)
                np.testing.assert_allclose(with_others.keypoints, alone.keypoints, atol=0.01)
                assert with_others.score == pytest.approx(alone.score, abs=1e-4)
    grays = [photo if photo.ndim == 2 else cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY) for photo in photos]
    for (boxes, crops), photo_alone, gray in zip(detector.crop_faces_many(photos, grays), photos, grays):
        alone_boxes, alone_crops = detector.crop_faces(photo_alone, gray)
        assert boxes == alone_boxes
        assert all(np.array_equal(a, b) for a, b in zip(crops, alone_crops))
    assert detector.detections_many([]) == []


def test_on_torch_it_finds_the_faces_it_finds_on_onnx_runtime_in_generated_scenes(detector, torch_networks):
    on_torch = MtcnnFaceDetector(networks=torch_networks)
    assert astronaut_scene_counts(on_torch.detect) == astronaut_scene_counts(detector.detect)


def test_it_finds_the_astronauts_face_with_eyes_nose_and_mouth_in_place(detector):
    photo = data.astronaut()
    [box] = detector.detect(photo)
    [haar_box] = HaarFaceDetector(framing=Framing()).detect(photo)
    assert box_iou(box, haar_box) > 0.5
    [found] = detector.detections(photo)
    right_eye, left_eye, nose, mouth_right, mouth_left = found.keypoints
    assert right_eye[0] < nose[0] < left_eye[0]  # the person's right eye is on the image's left
    assert mouth_right[0] < nose[0] < mouth_left[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(mouth_right[1], mouth_left[1])
    assert found.score > 0.95


def test_grayscale_and_large_photos_work_and_a_blank_one_has_no_faces(detector):
    photo = data.astronaut()
    [box] = detector.detect(photo)
    [gray_box] = detector.detect(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))
    assert box_iou(box, gray_box) > 0.8
    large = cv2.resize(photo, (1536, 1536), interpolation=cv2.INTER_CUBIC)  # past max_side: scaled down first
    large_box = detector.detect(large)[0]  # the largest: at this scale a badge on the suit scores 0.9 too
    assert box_iou(tuple(v * 3 for v in box), large_box) > 0.8  # in the large photo's own pixels
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == []
    assert detector.detect(np.full((480, 640), 200, np.uint8)) == []
    assert detector.detect(np.zeros((1, 1), np.uint8)) == []


def test_a_photo_past_the_working_size_gives_the_keypoints_and_crop_of_the_same_photo_small(detector):
    """A 1536 px photo is detected at 1280 px (max_side) and everything is scaled back: the keypoints
    and the aligned crop come from the same place of the face as in the 512 px original, three times
    larger. (Keypoints left in the working frame moved the crop box from (529, 192, 291, 292) to
    (441, 160, 243, 243) once.)"""
    photo = data.astronaut()
    large = cv2.resize(photo, (1536, 1536), interpolation=cv2.INTER_CUBIC)
    [small] = detector.detections(photo)
    found = max(detector.detections(large), key=lambda d: box_iou(tuple(v * 3 for v in small.box), d.box))
    face_side = small.box[2] * 3
    np.testing.assert_allclose(found.keypoints, small.keypoints * 3, atol=0.03 * face_side)

    gray, large_gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), cv2.cvtColor(large, cv2.COLOR_RGB2GRAY)
    [box], [crop] = detector.crop_faces(photo, gray)
    boxes, crops = detector.crop_faces(large, large_gray)
    best = max(range(len(boxes)), key=lambda i: box_iou(tuple(v * 3 for v in box), boxes[i]))
    assert box_iou(tuple(v * 3 for v in box), boxes[best]) > 0.9, (box, boxes[best])
    # The same face, resampled from another size: correlated at 0.97 (a crop 10 pixels off: 0.4).
    correlation = np.corrcoef(crops[best].ravel().astype(float), crop.ravel().astype(float))[0, 1]
    assert correlation > 0.9, correlation


def test_it_finds_faces_in_generated_scenes(detector):
    def detect(photo):  # boxes as the Predictor reports them: the aligned crops' squares
        return detector.crop_faces(photo, cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))[0]

    truths, found, false = astronaut_scene_counts(detect)
    assert truths >= 20 and found >= 0.9 * truths, (found, truths)
    assert false <= 1


def test_a_missing_package_or_changed_weights_are_clear_errors(monkeypatch, tmp_path):
    for name in ("pnet", "rnet", "onet"):
        (tmp_path / f"{name}.pt").write_bytes((weights_folder() / f"{name}.pt").read_bytes())
    assert set(load_weights(tmp_path)) == {"pnet", "rnet", "onet"}
    changed = bytearray((tmp_path / "onet.pt").read_bytes())
    changed[-1] ^= 0xFF
    (tmp_path / "onet.pt").write_bytes(bytes(changed))
    with pytest.raises(FerError, match="not the MTCNN weights fer was measured with"):
        load_weights(tmp_path)
    (tmp_path / "rnet.pt").unlink()
    with pytest.raises(FerError, match="no rnet.pt"):
        load_weights(tmp_path)
    monkeypatch.setattr(fer.mtcnn, "PACKAGE", "no_such_package_for_fer")
    with pytest.raises(FerError, match="pip install --no-deps facenet-pytorch"):
        weights_folder()


def test_a_minimum_face_below_the_networks_window_is_refused():
    with pytest.raises(ValueError, match="at least 12"):
        MtcnnFaceDetector(min_face=8, networks={})


def test_a_crowd_of_faces_is_found_in_bounded_memory():
    # 520 faces of 48 px in one photo give thousands of proposals; run over all of them at once,
    # R-Net and O-Net made ONNX Runtime keep 1.4 GB of activations (257 MB in chunks, when written).
    # The peak is VmHWM, not getrusage's ru_maxrss, which a child inherits from the test process.
    script = """
import cv2, numpy as np
from pathlib import Path
from skimage import data
from fer.mtcnn import MtcnnFaceDetector
face = cv2.resize(data.astronaut()[40:200, 150:310], (48, 48))
found = MtcnnFaceDetector().detect(np.tile(face, (20, 26, 1)))
status = Path("/proc/self/status").read_text().splitlines()
print(len(found), int(next(line.split()[1] for line in status if line.startswith("VmHWM:"))) // 1024)
"""
    result = run_python("-c", script)
    assert result.returncode == 0, result.stderr
    found, peak_mb = map(int, result.stdout.split())
    assert found >= 500
    assert peak_mb < 600


def test_crops_cut_from_the_pyramid_match_crops_cut_from_the_photo():
    rng = np.random.default_rng(0)
    blurred = cv2.GaussianBlur(rng.uniform(0, 255, (480, 640, 3)).astype(np.float32), (0, 0), 4)
    photo = cv2.normalize(blurred, None, 0, 255, cv2.NORM_MINMAX)  # smooth, but with full contrast
    levels = [photo]
    for scale in fer.mtcnn.pyramid(480, 640, 40):  # as MtcnnFaceDetector builds it: level from level
        levels.append(
            cv2.resize(levels[-1], (int(640 * scale + 1), int(480 * scale + 1)), interpolation=cv2.INTER_AREA)
        )
    boxes = np.array([[101.0, 81.0, 300.0, 280.0], [401.0, 201.0, 520.0, 320.0], [-39.0, 401.0, 80.0, 520.0]])
    # Mean differences in grey levels when written: 3.4 at 24 px, 0.4 at 48 px; the photo's own crops
    # moved by 2 pixels differ by 5.6 and 6.4.
    for side, tolerance in ((24, 4.0), (48, 1.0)):
        from_pyramid, from_photo = fer.mtcnn.crops(levels, boxes, side), fer.mtcnn.crops(levels[:1], boxes, side)
        assert from_pyramid.shape == (3, side, side, 3)
        assert np.abs(from_pyramid - from_photo).mean() < tolerance
        assert (from_pyramid[2, -side // 4 :, : side // 4] == 0).all()  # past the image's corner: black


def test_a_correction_from_a_wider_looks_box_moves_the_proposal_to_the_same_place():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 200, (8, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(30, 150, (8, 2)), rng.uniform(0, 1, (8, 1))], 1)
    larger = fer.mtcnn.enlarge(boxes, 0.15)
    sides, larger_sides = boxes[:, 2:4] - boxes[:, 0:2] + 1, larger[:, 2:4] - larger[:, 0:2] + 1
    np.testing.assert_allclose(larger_sides, sides * 1.15)  # 15% larger...
    np.testing.assert_allclose(larger[:, 0:2] + larger[:, 2:4], boxes[:, 0:2] + boxes[:, 2:4])  # ...same centre
    regression = rng.uniform(-0.2, 0.2, (8, 4)).astype(np.float32)
    np.testing.assert_allclose(
        fer.mtcnn.correct(larger, regression)[:, :4],
        fer.mtcnn.correct(boxes, fer.mtcnn.correction_of_enlarged(regression, 0.15))[:, :4],
        atol=1e-3,
    )


def test_r_nets_wider_look_lets_a_narrowly_rejected_tight_proposal_through(detector, monkeypatch):
    photo = data.astronaut()
    face = detector.detections(photo)[0].box
    pyramids, _ = detector._propose([detector._working_copy(photo)[0]])

    def proposal(share):  # a square `share` of the face's width around its centre: tighter than a head
        x, y, w, h = face
        half = share * w / 2
        return np.array([[x + w / 2 - half, y + h / 2 - half, x + w / 2 + half, y + h / 2 + half, 1.0]])

    def refined(share):
        (boxes,) = detector._refine(pyramids, [proposal(share)])
        return [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1, _ in boxes]

    # R-Net scores the 70% square 0.35 (rejected), the same square 15% larger 0.99.
    (passed,) = refined(0.7)
    assert box_iou(face, passed) > 0.5  # the larger view's correction, moved back onto the proposal
    assert refined(0.5) == []  # scored 0.08, under the floor: no wider look, and it stays out
    # The 60% square: 0.20, 15% larger 0.35 (raised, still rejected), 30% larger 0.96.
    (passed,) = refined(0.6)
    assert box_iou(face, passed) > 0.5
    monkeypatch.setattr(fer.mtcnn, "WIDER_LOOKS", {"rnet": (0.15,), "onet": (0.15,)})
    assert refined(0.6) == []  # without the second, wider look it stays out
    monkeypatch.setattr(fer.mtcnn, "WIDER_LOOKS", {"rnet": (), "onet": ()})  # the paper's cascade
    assert refined(0.7) == []


def test_keypoints_from_a_wider_looks_box_are_the_same_points_seen_from_the_proposal():
    rng = np.random.default_rng(1)
    corners = rng.uniform(0, 200, (8, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(30, 150, (8, 2)), rng.uniform(0, 1, (8, 1))], 1)
    wider = fer.mtcnn.enlarge(boxes, 0.15)
    points = rng.uniform(0, 1, (8, 10)).astype(np.float32)  # O-Net's: x of five points, then y, in box sides
    np.testing.assert_allclose(
        fer.mtcnn.keypoints_in_pixels(boxes, fer.mtcnn.as_seen_from_proposal("keypoints", points, 0.15)),
        fer.mtcnn.keypoints_in_pixels(wider, points),
        atol=1e-3,
    )


def test_o_nets_wider_look_lets_a_narrowly_rejected_tight_proposal_through_with_its_keypoints(detector, monkeypatch):
    photo = data.astronaut()
    (face,) = detector.detections(photo)
    pyramids, _ = detector._propose([detector._working_copy(photo)[0]])
    x, y, w, h = face.box

    def proposal(share):  # a square `share` of the face's width around its centre: tighter than a head
        half = share * w / 2
        return np.array([[x + w / 2 - half, y + h / 2 - half, x + w / 2 + half, y + h / 2 + half, 1.0]])

    def finished(share):  # O-Net's faces and their keypoints from that one proposal
        ((boxes, keypoints),) = detector._finish(pyramids, [proposal(share)])
        return [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1, _ in boxes], keypoints

    # O-Net scores the 65% square 0.59 (rejected at 0.8), the same square 15% larger 0.99.
    (passed,), (keypoints,) = finished(0.65)
    assert box_iou(face.box, passed) > 0.5
    # Its keypoints are where O-Net puts them in the wider box, and on the face.
    wider = fer.mtcnn.enlarge(proposal(0.65), 0.15)
    ((_, points, _),) = detector._run_on_crops("onet", pyramids, [wider], 48)
    np.testing.assert_allclose(keypoints, fer.mtcnn.keypoints_in_pixels(wider, points)[0], atol=1e-2)
    assert np.abs(keypoints - face.keypoints).max() < 0.05 * w
    assert finished(0.625)[0] == []  # scored 0.08, under the floor: no wider look, and it stays out
    monkeypatch.setattr(fer.mtcnn, "WIDER_LOOKS", {"rnet": (), "onet": ()})  # the paper's cascade
    assert finished(0.65)[0] == []
