"""fer/detection/yunet.py: OpenCV's YuNet, from the shipped model file, finds faces with their
keypoints, in color and gray, at any size, and from several threads at once."""

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from skimage import data

from fer.detection.base import box_iou
from fer.detection.haar import HaarFaceDetector
from fer.detection.yunet import YuNetFaceDetector
from tests.conftest import astronaut_scene_counts


@pytest.fixture(scope="module")
def detector():
    return YuNetFaceDetector()


def test_it_finds_the_astronauts_face_with_eyes_nose_and_mouth_in_place(detector):
    photo = data.astronaut()
    [box] = detector.detect(photo)
    [haar_box] = HaarFaceDetector().detect(photo)
    assert box_iou(box, haar_box) > 0.6
    [found] = detector.detections(photo)
    x, y, w, h = found.box
    right_eye, left_eye, nose, mouth_right, mouth_left = found.keypoints
    assert right_eye[0] < nose[0] < left_eye[0]  # the person's right eye is on the image's left
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(mouth_right[1], mouth_left[1]) < y + h
    assert found.score > 0.8


def test_gray_and_large_photos_give_the_same_face_in_their_own_pixels_and_a_blank_one_none(detector):
    photo = data.astronaut()
    [box] = detector.detect(photo)
    assert box_iou(detector.detect(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))[0], box) > 0.8
    large = cv2.resize(photo, (3072, 3072))  # past the 1280-pixel working size: found there, given here
    [large_box] = detector.detect(large)
    assert box_iou(tuple(v / 6 for v in large_box), box) > 0.8
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == []
    assert detector.detect(np.zeros((1, 5000), np.uint8)) == []


def test_threads_sharing_one_detector_find_what_one_finds_alone(detector):
    photos = [cv2.resize(data.astronaut(), (side, side)) for side in (256, 384, 512, 640)] * 4
    alone = [detector.detect(photo) for photo in photos]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(detector.detect, photos)) == alone


def test_it_finds_faces_in_generated_scenes(detector):
    truths, found, false = astronaut_scene_counts(detector.detect)
    assert truths >= 8 and found >= 0.8 * truths, (found, truths)
    assert false <= 1
