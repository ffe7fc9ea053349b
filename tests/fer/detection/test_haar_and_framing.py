import cv2
import numpy as np
import pytest

from fer.detection.base import box_iou
from fer.detection.framing import Alignment, Framing
from fer.detection.haar import HaarFaceDetector
from fer.detection.yunet import YuNetFaceDetector
from fer.errors import FerError


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
    bad_model = tmp_path / "yunet.onnx"
    bad_model.write_bytes(b"not an ONNX file")
    with pytest.raises(FerError, match="OpenCV cannot load the YuNet model"):
        YuNetFaceDetector(model_path=bad_model)


def test_large_photos_are_scanned_downscaled_and_boxes_come_back_in_their_pixels():
    from skimage import data

    big = cv2.resize(data.astronaut(), (4000, 4000), interpolation=cv2.INTER_CUBIC)  # 16 megapixels
    boxes = HaarFaceDetector(max_side=1280).detect(big)
    scale = 4000 / 512  # the face sits at about (176, 66, 95, 95) in the 512-pixel original
    expected = tuple(round(v * scale) for v in (176, 66, 95, 95))
    assert max(box_iou(box, expected) for box in boxes) > 0.7  # Haar adds false positives on upscaled photos
    assert all(x + w <= 4000 and y + h <= 4000 for x, y, w, h in boxes)


def test_framing_turns_a_detectors_box_into_a_square_crop_inside_the_image():
    assert Framing().apply((10, 20, 30, 40), 640, 480) == (10, 20, 30, 40)  # the default changes nothing
    # A box 40 wide and 90 high has size 60: a square of 1.5 x 60 = 90 around its centre, moved up by 0.1 x 60.
    assert Framing(side=1.5, dy=-0.1).apply((100, 100, 40, 90), 640, 480) == (75, 94, 90, 90)
    # Near the image's edge the square is clipped, never reaching past the image.
    assert Framing(side=2.0).apply((0, 0, 50, 50), 640, 480) == (0, 0, 75, 75)
    assert Framing(side=2.0).apply((600, 440, 40, 40), 640, 480) == (580, 420, 60, 60)
    # A box that ends up wholly outside keeps what of itself lies inside.
    assert Framing(dx=-10.0).apply((0, 0, 20, 20), 640, 480) == (0, 0, 20, 20)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(float).ravel(), b.astype(float).ravel())[0, 1])


def test_alignment_crops_an_upright_face_as_its_square_and_turns_a_tilted_one_upright():
    from fer.preprocess import to_gray48

    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (480, 640)).astype(np.float32), (0, 0), 3)
    gray = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    alignment = Alignment(side=2.5, right=0.0, down=0.3)
    eyes, mouth = np.array([320.0, 200.0]), np.array([320.0, 260.0])  # 60 px apart: a 150 px square
    crop, box = alignment.crop(gray, eyes, mouth)
    assert box == (245, 143, 150, 150)  # centred 0.3 x 60 px below the eyes
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert _correlation(crop, to_gray48(gray[143:293, 245:395])) > 0.99  # not mirrored, not shifted
    # The same picture turned 20 degrees about the eyes: aligned, the crop is the upright one again.
    turn = cv2.getRotationMatrix2D(tuple(eyes), 20, 1.0)
    turned = cv2.warpAffine(gray, turn, (640, 480), flags=cv2.INTER_LINEAR)
    turned_mouth = turn @ np.append(mouth, 1.0)
    turned_crop, _ = alignment.crop(turned, eyes, turned_mouth)
    assert _correlation(turned_crop, crop) > 0.95
    assert _correlation(to_gray48(turned[143:293, 245:395]), crop) < 0.8  # what framing alone would see


def test_alignment_keeps_the_share_of_a_tilt_it_is_told_to_keep():
    from fer.preprocess import to_gray48

    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (480, 640)).astype(np.float32), (0, 0), 3)
    gray = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    eyes, mouth = np.array([320.0, 200.0]), np.array([320.0, 260.0])

    def tilted(degrees):  # the picture turned about the eyes, and where the mouth went
        turn = cv2.getRotationMatrix2D(tuple(eyes), degrees, 1.0)
        return cv2.warpAffine(gray, turn, (640, 480), flags=cv2.INTER_LINEAR), turn @ np.append(mouth, 1.0)

    def crop(picture, mouth_there, kept_tilt):
        return Alignment(side=2.5, right=0.0, down=0.3, kept_tilt=kept_tilt).crop(picture, eyes, mouth_there)

    by_20, mouth_20 = tilted(20)
    by_10, mouth_10 = tilted(10)
    kept, box = crop(by_20, mouth_20, 1.0)  # all of it kept: the square as the picture shows it
    x, y, w, h = box
    assert _correlation(kept, to_gray48(by_20[y : y + h, x : x + w])) > 0.95
    assert _correlation(crop(by_20, mouth_20, 0.5)[0], crop(by_10, mouth_10, 1.0)[0]) > 0.95  # half of 20
    assert _correlation(crop(by_20, mouth_20, 0.0)[0], crop(gray, mouth, 0.0)[0]) > 0.95  # none: upright
    assert _correlation(crop(by_20, mouth_20, 0.5)[0], crop(gray, mouth, 0.0)[0]) < 0.9


def test_alignment_at_the_image_edge_repeats_edge_pixels_and_clips_the_box():
    gray = np.full((100, 120), 77, np.uint8)
    crop, box = Alignment(side=2.5, right=0.0, down=0.3).crop(gray, np.array([5.0, 5.0]), np.array([5.0, 45.0]))
    assert crop.shape == (48, 48) and (crop == 77).all()
    x, y, w, h = box
    assert x >= 0 and y >= 0 and x + w <= 120 and y + h <= 100 and w > 0 and h > 0
