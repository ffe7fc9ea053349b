"""fer/detection/mtcnn.py: the default face detector finds faces in real and generated photos, its
networks (the shipped ONNX files for the CPU, torch's for a GPU) compute what facenet-pytorch's do,
and several photos at once give the faces each gives alone."""

import cv2
import numpy as np
import pytest
from skimage import data

import fer.detection.mtcnn
import fer.preprocess
from fer.detection.base import Detection, box_iou
from fer.detection.framing import Framing
from fer.detection.haar import HaarFaceDetector
from fer.detection.mtcnn import MODEL_FILES, MtcnnFaceDetector, load_networks
from fer.detection.shipped import model_file
from tests.conftest import astronaut_scene_counts, run_python


def crop_faces(detector, image, gray):
    """One image's boxes and crops, as the Predictor asks for them."""
    return detector.crop_faces_many([image], [gray])[0]


@pytest.fixture(scope="module")
def detector():
    return MtcnnFaceDetector()


@pytest.fixture(scope="module")
def torch_networks():
    """The torch networks a GPU runs, here on the CPU (device "cpu" would choose ONNX Runtime).
    torch and facenet-pytorch are imported only where a test compares with them: they cost 4 CPU
    seconds, which `make mutate` would pay again for each of MTCNN's 680 geometry mutants."""
    from fer.detection.mtcnn_torch import TorchNetwork

    return {name: TorchNetwork.from_onnx(name, model_file(file), "cpu") for name, file in MODEL_FILES.items()}


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
        alone_boxes, alone_crops = crop_faces(detector, photo_alone, gray)
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
    [box], [crop] = crop_faces(detector, photo, gray)
    boxes, crops = crop_faces(detector, large, large_gray)
    best = max(range(len(boxes)), key=lambda i: box_iou(tuple(v * 3 for v in box), boxes[i]))
    assert box_iou(tuple(v * 3 for v in box), boxes[best]) > 0.9, (box, boxes[best])
    # The same face, resampled from another size: correlated at 0.97 (a crop 10 pixels off: 0.4).
    correlation = np.corrcoef(crops[best].ravel().astype(float), crop.ravel().astype(float))[0, 1]
    assert correlation > 0.9, correlation


def test_it_finds_faces_in_generated_scenes(detector):
    def detect(photo):  # boxes as the Predictor reports them: the aligned crops' squares
        return crop_faces(detector, photo, cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))[0]

    truths, found, false = astronaut_scene_counts(detect)
    assert truths >= 20 and found >= 0.9 * truths, (found, truths)
    assert false <= 1


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
from fer.detection.mtcnn import MtcnnFaceDetector
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
    for scale in fer.detection.mtcnn.pyramid(480, 640, 40):  # as MtcnnFaceDetector builds it: level from level
        levels.append(
            cv2.resize(levels[-1], (int(640 * scale + 1), int(480 * scale + 1)), interpolation=cv2.INTER_AREA)
        )
    boxes = np.array([[101.0, 81.0, 300.0, 280.0], [401.0, 201.0, 520.0, 320.0], [-39.0, 401.0, 80.0, 520.0]])
    # Mean differences in grey levels when written: 3.4 at 24 px, 0.4 at 48 px; the photo's own crops
    # moved by 2 pixels differ by 5.6 and 6.4.
    for side, tolerance in ((24, 4.0), (48, 1.0)):
        from_pyramid, from_photo = (
            fer.detection.mtcnn.crops(levels, boxes, side),
            fer.detection.mtcnn.crops(levels[:1], boxes, side),
        )
        assert from_pyramid.shape == (3, side, side, 3)
        assert np.abs(from_pyramid - from_photo).mean() < tolerance
        assert (from_pyramid[2, -side // 4 :, : side // 4] == 0).all()  # past the image's corner: black


def test_a_correction_from_a_wider_looks_box_moves_the_proposal_to_the_same_place():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 200, (8, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(30, 150, (8, 2)), rng.uniform(0, 1, (8, 1))], 1)
    larger = fer.detection.mtcnn.enlarge(boxes, 0.15)
    sides, larger_sides = boxes[:, 2:4] - boxes[:, 0:2] + 1, larger[:, 2:4] - larger[:, 0:2] + 1
    np.testing.assert_allclose(larger_sides, sides * 1.15)  # 15% larger...
    np.testing.assert_allclose(larger[:, 0:2] + larger[:, 2:4], boxes[:, 0:2] + boxes[:, 2:4])  # ...same centre
    regression = rng.uniform(-0.2, 0.2, (8, 4)).astype(np.float32)
    np.testing.assert_allclose(
        fer.detection.mtcnn.correct(larger, regression)[:, :4],
        fer.detection.mtcnn.correct(boxes, fer.detection.mtcnn.correction_of_enlarged(regression, 0.15))[:, :4],
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
    monkeypatch.setattr(fer.detection.mtcnn, "WIDER_LOOKS", {"rnet": (0.15,), "onet": (0.15,)})
    assert refined(0.6) == []  # without the second, wider look it stays out
    monkeypatch.setattr(fer.detection.mtcnn, "WIDER_LOOKS", {"rnet": (), "onet": ()})  # the paper's cascade
    assert refined(0.7) == []


def test_a_wider_looks_face_scores_are_taken_as_they_are():
    scores = np.array([[0.1, 0.9], [0.7, 0.3]], np.float32)
    np.testing.assert_array_equal(fer.detection.mtcnn.as_seen_from_proposal("face", scores, 0.15), scores)


def test_keypoints_from_a_wider_looks_box_are_the_same_points_seen_from_the_proposal():
    rng = np.random.default_rng(1)
    corners = rng.uniform(0, 200, (8, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(30, 150, (8, 2)), rng.uniform(0, 1, (8, 1))], 1)
    wider = fer.detection.mtcnn.enlarge(boxes, 0.15)
    points = rng.uniform(0, 1, (8, 10)).astype(np.float32)  # O-Net's: x of five points, then y, in box sides
    np.testing.assert_allclose(
        fer.detection.mtcnn.keypoints_in_pixels(
            boxes, fer.detection.mtcnn.as_seen_from_proposal("keypoints", points, 0.15)
        ),
        fer.detection.mtcnn.keypoints_in_pixels(wider, points),
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
    wider = fer.detection.mtcnn.enlarge(proposal(0.65), 0.15)
    ((_, points, _),) = detector._run_on_crops("onet", pyramids, [wider], 48)
    np.testing.assert_allclose(keypoints, fer.detection.mtcnn.keypoints_in_pixels(wider, points)[0], atol=1e-2)
    assert np.abs(keypoints - face.keypoints).max() < 0.05 * w
    assert finished(0.625)[0] == []  # scored 0.08, under the floor: no wider look, and it stays out
    monkeypatch.setattr(fer.detection.mtcnn, "WIDER_LOOKS", {"rnet": (), "onet": ()})  # the paper's cascade
    assert finished(0.65)[0] == []


# ---- the geometry's pure functions, against values computed by hand or by a plainer method -----------


def test_the_pyramid_holds_every_scale_whose_image_still_holds_p_nets_window():
    assert fer.detection.mtcnn.pyramid(24, 24, 24) == [0.5]  # 24 x 0.5 is exactly the 12-pixel window
    # 12/20 = 0.6, then 0.709 times smaller while 100 x scale >= 12: 0.6 ... 0.1516 (15.2 pixels).
    assert fer.detection.mtcnn.pyramid(100, 200, 20) == pytest.approx(
        [0.6, 0.4254, 0.30161, 0.213842, 0.151614], rel=1e-5
    )
    assert fer.detection.mtcnn.pyramid(11, 500, 12) == []  # a strip narrower than the window


def test_p_nets_cells_at_or_above_the_threshold_become_boxes_in_the_image():
    face = np.zeros((3, 4), np.float32)
    face[0, 0], face[1, 2], face[2, 0] = 0.49, 0.5, 0.9  # below, exactly at, above the threshold
    regression = np.zeros((4, 3, 4), np.float32)
    regression[:, 1, 2], regression[:, 2, 0] = [0.1, 0.2, 0.3, 0.4], [-0.1, -0.2, -0.3, -0.4]
    # A cell (column c, row r) at scale s covers floor((2c + 1) / s) .. floor((2c + 12) / s) across.
    expected = [
        [8, 5, 26, 23, 0.5, 0.1, 0.2, 0.3, 0.4],  # c 2, r 1: 5/0.6, 3/0.6, 16/0.6, 14/0.6
        [1, 8, 20, 26, 0.9, -0.1, -0.2, -0.3, -0.4],  # c 0, r 2: 1/0.6, 5/0.6, 12/0.6, 16/0.6
    ]
    np.testing.assert_allclose(fer.detection.mtcnn.proposals(regression, face, 0.6, 0.5), expected, rtol=1e-6)


def test_a_box_corrected_by_r_or_o_net_moves_each_edge_by_its_share_of_the_side():
    box = np.array([[10.0, 20.0, 29.0, 59.0, 0.9]])  # 20 x 40 pixels, counted from 1 as the paper does
    moved = fer.detection.mtcnn.correct(box, np.array([[0.1, -0.05, 0.2, 0.25]]))
    np.testing.assert_allclose(moved, [[12.0, 18.0, 33.0, 69.0, 0.9]])


def test_keypoints_are_placed_in_their_boxes_in_pixels():
    boxes = np.array([[10.0, 20.0, 29.0, 59.0, 0.9], [100.0, 50.0, 109.0, 54.0, 0.8]])  # 20x40, 10x5
    points = np.array([[0, 0.25, 0.5, 0.75, 1, 0, 0.1, 0.2, 0.3, 0.4], [1, 0, 0, 0, 0.5, 0, 0, 1, 0, 0.2]])
    expected = [
        [[9, 19], [14, 23], [19, 27], [24, 31], [29, 35]],  # x = 10 + 20 p - 1, y = 20 + 40 p - 1
        [[109, 49], [99, 49], [99, 54], [99, 49], [104, 50]],  # x = 100 + 10 p - 1, y = 50 + 5 p - 1
    ]
    np.testing.assert_allclose(fer.detection.mtcnn.keypoints_in_pixels(boxes, points), expected)


def test_a_box_is_squared_on_its_longer_side_around_its_centre():
    boxes = np.array([[10.0, 0.0, 60.0, 10.0, 0.5], [10.0, 20.0, 30.0, 60.0, 0.7]])  # wide, then tall
    np.testing.assert_allclose(fer.detection.mtcnn.square(boxes), [[10, -20, 60, 30, 0.5], [0, 20, 40, 60, 0.7]])


def test_p_nets_proposals_are_merged_across_scales_corrected_and_squared():
    # x0 y0 x1 y1 score, then the corrections in box sides (P-Net's sides are x1 - x0, without the +1).
    found = [
        np.array([[10.0, 20.0, 29.0, 59.0, 0.9, 0.1, -0.05, 0.2, 0.25]]),
        np.array([[11.0, 21.0, 30.0, 60.0, 0.6, 0.0, 0.0, 0.0, 0.0], [200, 10, 210, 15, 0.7, 0, 0, -0.5, 0.4]]),
    ]
    merged = fer.detection.mtcnn._merged_proposals(found)
    # The second scale's near copy of the first box goes (IoU 0.86: the better score stays, though
    # the copy reaches lower); the first becomes (11.9, 18.05,
    # 32.8, 68.75): 20.9 x 50.7, squared on 50.7 around (22.35, 43.4). The far box becomes
    # (200, 10, 205, 17), 5 x 7, squared on 7 around (202.5, 13.5).
    np.testing.assert_allclose(
        merged, [[-3.0, 18.05, 47.7, 68.75, 0.9], [199.0, 10.0, 206.0, 17.0, 0.7]], atol=1e-4
    )  # fmt: skip
    assert fer.detection.mtcnn._merged_proposals([]).shape == (0, 5)


def test_tall_proposals_a_little_apart_are_merged_by_their_heights():
    # 10 x 100 boxes 10 pixels apart down: IoU 900 / 1100 = 0.82, one face.
    found = [
        np.array([[0.0, 0.0, 10.0, 100.0, 0.9, 0, 0, 0, 0]]),
        np.array([[0.0, 10.0, 10.0, 110.0, 0.8, 0, 0, 0, 0]]),
    ]
    np.testing.assert_allclose(fer.detection.mtcnn._merged_proposals(found), [[-45.0, 0.0, 55.0, 100.0, 0.9]])


def _overlap_over_smaller(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height / max(smaller, 1e-9)


def _intersection_over_union(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union


def _greedy_suppression(boxes, scores, threshold, overlap) -> list[int]:
    """The plain definition: best first, a box is kept unless it overlaps a kept one by more than
    `threshold`."""
    kept: list[int] = []
    for index in sorted(range(len(boxes)), key=lambda i: -scores[i]):
        if all(overlap(boxes[index], boxes[other]) <= threshold for other in kept):
            kept.append(index)
    return kept


def test_suppression_keeps_the_boxes_the_plain_greedy_definition_keeps():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        corners = rng.uniform(0, 60, (40, 2))
        sides = rng.uniform(2, 40, (40, 2))
        sides[:6] = rng.uniform(0.1, 1.0, (6, 2))  # boxes smaller than a pixel: areas under 1
        boxes = np.concatenate([corners, corners + sides], 1)
        scores = (rng.permutation(40) + 1) / 41.0  # distinct, above 0 as every face score is
        for threshold in (0.3, 0.5, 0.7):
            picked = fer.detection.mtcnn.nms(boxes, scores, threshold, by_smaller=True).tolist()
            assert picked == _greedy_suppression(boxes, scores, threshold, _overlap_over_smaller)
            picked = fer.detection.mtcnn.nms(boxes, scores, threshold).tolist()
            assert picked == _greedy_suppression(boxes, scores, threshold, _intersection_over_union)


def test_suppression_keeps_a_box_that_overlaps_a_better_one_by_exactly_the_threshold():
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]])  # overlap 50 of 100: 0.5 by either measure
    assert fer.detection.mtcnn.nms(boxes, np.array([0.9, 0.8]), 0.5, by_smaller=True).tolist() == [0, 1]
    assert fer.detection.mtcnn.nms(boxes, np.array([0.9, 0.8]), 0.49, by_smaller=True).tolist() == [0]


def test_suppression_keeps_a_box_of_no_area_once():
    boxes = np.array([[5.0, 5.0, 5.0, 9.0], [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 24.0]])  # a line first
    assert fer.detection.mtcnn.nms(boxes, np.array([0.9, 0.8, 0.7]), 0.7, by_smaller=True).tolist() == [0, 1, 2]


def _crop_from_padded_photo(photo: np.ndarray, box, side: int) -> np.ndarray:
    """The crop as a plain method cuts it: pad the photo with black, cut the box (corners count pixels
    from 1, truncated, as the paper's code does), area-average it down or stretch it bilinearly up."""
    x0, y0, x1, y1 = (int(np.trunc(v)) - 1 for v in box)
    width, height = x1 - x0 + 1, y1 - y0 + 1
    pad = 2 * max(width, height, *photo.shape[:2])
    padded = np.pad(photo, ((pad, pad), (pad, pad), (0, 0)))
    region = padded[y0 + pad : y1 + 1 + pad, x0 + pad : x1 + 1 + pad]
    interpolation = cv2.INTER_AREA if width > side or height > side else cv2.INTER_LINEAR
    return cv2.resize(region, (side, side), interpolation=interpolation)


def test_crops_are_the_boxes_cut_from_the_photo_padded_with_black():
    photo = np.random.default_rng(0).uniform(0, 255, (60, 80, 3)).astype(np.float32)  # noise: a pixel off shows
    boxes = [
        (11.0, 21.0, 40.9, 44.0),  # inside, cut shrinking (30 x 24 to 24)
        (31.0, 11.0, 42.0, 22.0),  # inside, stretched (12 x 12 to 24)
        (-5.0, 10.0, 14.0, 29.0),  # past the left edge
        (70.0, 31.0, 89.0, 50.0),  # past the right edge
        (21.0, -9.0, 40.0, 10.0),  # past the top
        (41.0, 50.0, 60.0, 69.0),  # past the bottom
        (101.0, 10.0, 120.0, 29.0),  # wholly outside: black
        (83.0, 30.0, 110.0, 49.0),  # wholly outside, starting two pixels past the right edge
        (10.0, 63.0, 29.0, 90.0),  # wholly outside, starting two pixels past the bottom
        (61.0, 5.0, 81.0, 24.0),  # one pixel past the right edge
        (5.0, 41.0, 24.0, 61.0),  # one pixel past the bottom
        (25.0, 41.0, 44.0, 62.0),  # two pixels past the bottom
        (1.0, 30.0, 24.0, 40.0),  # exactly as wide as the crop, lower
        (21.0, 31.0, 60.0, 31.0),  # one pixel high
        (31.0, 5.0, 31.0, 40.0),  # one pixel wide
        (1.0, 1.0, 40.0, 12.0),  # wider than the crop, shorter: area-averaged across, stretched down
        (5.0, 5.0, 14.0, 28.0),  # exactly as high as the crop, narrower
    ]
    cut = fer.detection.mtcnn.crops([photo], np.array(boxes), 24)
    for index, box in enumerate(boxes):
        np.testing.assert_allclose(cut[index], _crop_from_padded_photo(photo, box, 24), atol=1e-3, err_msg=str(box))
    assert (cut[6] == 0).all() and (cut[7] == 0).all() and (cut[8] == 0).all()


def test_a_box_of_no_size_gives_a_black_crop_and_the_next_box_is_still_cut():
    photo = np.random.default_rng(1).uniform(1, 255, (40, 40, 3)).astype(np.float32)
    boxes = np.array([[21.0, 5.0, 20.0, 30.0], [5.0, 21.0, 30.0, 20.0], [1.0, 1.0, 24.0, 24.0]])
    cut = fer.detection.mtcnn.crops([photo], boxes, 24)
    assert (cut[:2] == 0).all()
    np.testing.assert_allclose(cut[2], photo[:24, :24])


def test_photos_past_the_working_size_are_shrunk_to_it_and_no_others(detector):
    for (height, width), expected_shape, shrink in [
        ((1000, 2000), (640, 1280), 0.64),
        ((1280, 720), (1280, 720), 1.0),  # exactly the working size: as it is
        ((480, 640), (480, 640), 1.0),
        ((5000, 1), (1280, 1), 0.256),  # never 0 pixels wide
        ((1, 5000), (1, 1280), 0.256),  # nor 0 high
    ]:
        working, factor = detector._working_copy(np.zeros((height, width, 3), np.uint8))
        assert working.shape == (*expected_shape, 3) and working.dtype == np.float32
        assert factor == pytest.approx(shrink)


def test_a_photo_one_pixel_wide_or_high_past_the_working_size_has_no_faces(detector):
    for shape in ((5000, 1, 3), (1, 5000, 3)):
        assert detector.detections(np.full(shape, 128, np.uint8)) == []


def test_crops_without_alignment_are_the_framed_boxes(detector):
    photo = data.astronaut()
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    unaligned = MtcnnFaceDetector(alignment=None, networks=detector.networks)
    [(x, y, w, h)], [crop] = crop_faces(unaligned, photo, gray)
    [found] = detector.detect(photo)
    assert (x, y, w, h) == unaligned.framing.apply(found, *gray.shape[::-1])
    np.testing.assert_array_equal(crop, fer.preprocess.to_gray48(gray[y : y + h, x : x + w]))


def _face_of_dots(centre_x: float, centre_y: float, eye_gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Five keypoints of an upright face (eyes, nose, mouth corners), left-right symmetric about
    centre_x, and a grey image with a dot on each."""
    g = eye_gap
    points = np.array(
        [[-g / 2, 0], [g / 2, 0], [0, 0.5 * g], [-0.4 * g, g], [0.4 * g, g]], np.float32
    ) + np.array([centre_x, centre_y], np.float32)  # fmt: skip
    image = np.full((420, 400), 60, np.uint8)
    for px, py in points:
        cv2.circle(image, (round(px), round(py)), max(2, round(g / 12)), 255, -1)
    return image, points


def test_aligned_crops_centre_on_the_eyes_midpoint_and_come_largest_first(detector):
    # Lower in the photo than the large one; its box is square, the large one's a pixel taller than
    # wide: an order by position or by shape would put the large one second.
    small_image, small_points = _face_of_dots(100, 330, 28)
    large_image, large_points = _face_of_dots(260, 150, 70)
    gray = np.maximum(small_image, large_image)
    detections = [  # the small one scored higher: found first, reported second
        Detection((85.0, 315.0, 30.0, 45.0), small_points, 0.99),
        Detection((225.0, 115.0, 70.0, 105.0), large_points, 0.95),
    ]
    boxes, crops = detector._crops(gray, detections)
    assert boxes[0][2] > boxes[1][2]
    # Each crop is the alignment's, placed by the two eyes' midpoint and the mouth corners' midpoint.
    for crop, points in zip(crops, (large_points, small_points)):
        expected, _ = detector.alignment.crop(gray, points[:2].mean(0), points[3:].mean(0))
        np.testing.assert_array_equal(crop, expected)
    for crop in crops:  # each face's dots are mirror images about the eyes' midpoint: so is its crop
        assert np.abs(crop.astype(float) - crop[:, ::-1]).mean() < 4, np.abs(crop.astype(float) - crop[:, ::-1]).mean()
