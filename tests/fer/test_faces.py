import cv2
import numpy as np
import pytest

from fer.errors import FerError
from fer.faces import HaarFaceDetector, YuNetFaceDetector, box_iou


@pytest.mark.parametrize("equalize", [True, False])
def test_haar_finds_the_face_in_gray_and_rgb_photographs(equalize):
    from skimage import data

    rgb = data.astronaut()
    detector = HaarFaceDetector(equalize=equalize)
    boxes = detector.detect(rgb)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert 150 < x < 200 and 50 < y < 90 and 80 < w < 110 and w == h
    gray = rgb.mean(axis=2).astype(np.uint8)
    assert len(detector.detect(gray)) == 1


def test_faces_come_largest_first():
    from skimage import data

    photo = data.astronaut()  # (512, 512, 3)
    smaller = cv2.resize(photo, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    canvas = np.full((512, 512 + smaller.shape[1], 3), 128, np.uint8)
    canvas[:, :512] = photo
    canvas[: smaller.shape[0], 512:] = smaller  # the same face at 60% on the right
    boxes = HaarFaceDetector().detect(canvas)
    areas = [w * h for _, _, w, h in boxes]
    assert areas == sorted(areas, reverse=True)
    big_face = HaarFaceDetector().detect(photo)[0]
    small_face = (
        512 + round(big_face[0] * 0.6),
        round(big_face[1] * 0.6),
        round(big_face[2] * 0.6),
        round(big_face[3] * 0.6),
    )
    assert box_iou(boxes[0], big_face) > 0.7  # the larger face comes first
    assert any(box_iou(box, small_face) > 0.7 for box in boxes[1:])


def test_a_blank_image_has_no_faces():
    assert HaarFaceDetector().detect(np.zeros((240, 320, 3), np.uint8)) == []


def test_unloadable_detectors_are_clear_errors(tmp_path):
    bad = tmp_path / "cascade.xml"
    bad.write_text("<not a cascade/>")
    with pytest.raises(FerError, match="cannot load the Haar cascade"):
        HaarFaceDetector(bad)
    with pytest.raises(FerError, match="no YuNet model at"):
        YuNetFaceDetector(tmp_path / "face_detection_yunet.onnx")


def test_large_photos_are_scanned_downscaled_and_boxes_come_back_in_their_pixels():
    from skimage import data

    big = cv2.resize(data.astronaut(), (4000, 4000), interpolation=cv2.INTER_CUBIC)  # 16 megapixels
    boxes = HaarFaceDetector(max_side=1280).detect(big)
    scale = 4000 / 512  # the face sits at about (176, 66, 95, 95) in the 512-pixel original
    expected = tuple(round(v * scale) for v in (176, 66, 95, 95))
    assert max(box_iou(box, expected) for box in boxes) > 0.7  # Haar adds false positives on upscaled photos
    assert all(x + w <= 4000 and y + h <= 4000 for x, y, w, h in boxes)
