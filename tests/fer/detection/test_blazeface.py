"""fer/detection/blazeface.py: the CNN face detector finds faces in real and generated photos."""

import cv2
import numpy as np
import pytest
from skimage import data

from fer.detection.base import box_iou
from fer.detection.blazeface import BlazeFaceDetector
from fer.detection.haar import HaarFaceDetector
from tests.conftest import astronaut_scene_counts


@pytest.fixture(scope="module")
def detector():
    return BlazeFaceDetector()


def test_it_finds_the_astronauts_face_with_eyes_nose_and_mouth_in_place(detector):
    photo = data.astronaut()
    [box] = detector.detect(photo)
    [haar_box] = HaarFaceDetector().detect(photo)
    assert box_iou(box, haar_box) > 0.6
    [found] = detector.detections(photo)
    x, y, w, h = found.box
    right_eye, left_eye, nose, mouth = found.keypoints[:4]
    assert right_eye[0] < nose[0] < left_eye[0]  # the person's right eye is on the image's left
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1] < y + h
    assert found.score > 0.9


def test_grayscale_photos_work_and_a_blank_one_has_no_faces(detector):
    photo = data.astronaut()
    [box] = detector.detect(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))
    assert box_iou(box, detector.detect(photo)[0]) > 0.8
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == []
    assert detector.detect(np.zeros((1, 1), np.uint8)) == []


def test_it_finds_faces_in_generated_scenes(detector):
    # The model's input is 192 px: smaller faces are for tiling to find.
    truths, found, false = astronaut_scene_counts(detector.detect, smallest=96)
    assert truths >= 8 and found >= 0.6 * truths, (found, truths)  # 15 of 19 when written
    assert false <= 1
