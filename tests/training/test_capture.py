"""training/capture.py: each capture effect does what it says to a real face, on draws that stay the
same whichever effects are asked for."""

import math

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from fer.errors import FerError
from training.capture import (
    EFFECTS,
    PROXY_FRAMING_ERRORS_FILE,
    SMALLEST_SIDE,
    Capture,
    FramingError,
    captured_faces,
    load_framing_errors,
    proxy_crops,
    save_framing_errors,
)


@pytest.fixture(scope="module")
def face():
    """The astronaut's face, cut tight and scaled to 48x48 as FER2013 cuts faces."""
    gray = np.asarray(Image.fromarray(data.astronaut()).convert("L"))[40:190, 165:315]
    return np.asarray(Image.fromarray(gray).resize((48, 48), Image.LANCZOS))


def draws(seed: int, capture: Capture | None = None):
    return (capture or Capture()).draw(np.random.default_rng(seed))


def present(effect: str, seeds=range(200)) -> list[int]:
    """Seeds whose draws put `effect` in the face."""
    return [seed for seed in seeds if effect in draws(seed).present]


def test_the_same_seed_gives_the_same_crop_and_other_seeds_others(face):
    capture = Capture(framing_errors=(FramingError(0.05, -0.03, 0.1), FramingError(-0.04, 0.02, -0.05)))
    crops = [capture.apply(face, draws(seed, capture)) for seed in (0, 0, 1, 2, 3)]
    assert np.array_equal(crops[0], crops[1])
    assert len({crop.tobytes() for crop in crops}) == 4


def test_no_effect_asked_for_gives_the_face_back(face):
    assert np.array_equal(Capture().apply(face, draws(0), effects=()), face)


def test_about_half_the_faces_have_each_effect(face):
    for effect in EFFECTS:
        assert 70 <= len(present(effect)) <= 130, effect


@pytest.mark.parametrize("effect", [e for e in EFFECTS if e != "framing"])
def test_each_effect_changes_the_faces_it_is_present_in_and_no_other(face, effect):
    capture = Capture()
    for seed in range(40):
        crop = capture.apply(face, draws(seed), effects=(effect,))
        if seed in present(effect):
            assert crop.shape != face.shape or not np.array_equal(crop, face), seed
        else:
            assert np.array_equal(crop, face), seed


def test_resolution_gives_the_face_at_its_size_in_the_photo(face):
    sides = {Capture().apply(face, draws(seed), effects=("resolution",)).shape[0] for seed in present("resolution")}
    assert min(sides) >= SMALLEST_SIDE and max(sides) <= 48 and len(sides) > 10


def test_jpeg_leaves_blocks_where_the_face_was_smooth(face):
    seeds = present("jpeg")[:10]
    crops = [Capture().apply(face, draws(seed), effects=("jpeg",)) for seed in seeds]
    error = np.mean([np.abs(crop.astype(int) - face).mean() for crop in crops])
    assert 1 < error < 12  # visible but the face is still there (quality 20 to 50)


def test_framing_takes_the_crop_the_error_says(face):
    """An error of a quarter side to the right: the crop's left half is the face's right half."""
    capture = Capture(framing_errors=(FramingError(dx=0.25, dy=0.0, log_scale=0.0),))
    seed = next(s for s in present("framing") if s not in present("turn"))
    crop = capture.apply(face, draws(seed, capture), effects=("framing",))
    assert np.abs(crop[:, :24].astype(int) - face[:, 12:36]).mean() < 1.0


def test_a_larger_crop_shows_the_face_smaller(face):
    capture = Capture(framing_errors=(FramingError(dx=0.0, dy=0.0, log_scale=math.log(2.0)),))
    seed = present("framing")[0]
    crop = capture.apply(face, draws(seed, capture), effects=("framing",))
    half = cv2.resize(face, (24, 24), interpolation=cv2.INTER_AREA)
    assert np.abs(crop[12:36, 12:36].astype(int) - half).mean() < 6


def test_framing_error_between_a_true_box_and_a_detectors():
    error = FramingError.between((100, 100, 50, 50), (110, 95, 60, 60))
    assert error.dx == pytest.approx(0.3) and error.dy == pytest.approx(0.0)  # centres (135, 125), (125, 125)
    assert error.log_scale == pytest.approx(math.log(1.2))


def test_bad_faces_and_effects_are_refused_with_what_was_wrong(face):
    with pytest.raises(ValueError, match=r"unknown capture effects \['fog'\]"):
        Capture().apply(face, draws(0), effects=("fog",))
    with pytest.raises(ValueError, match=r"expected a \(48, 48\) uint8 face, got \(48, 48, 3\)"):
        Capture().apply(np.zeros((48, 48, 3), np.uint8), draws(0))


def test_the_trainer_captures_about_its_share_of_the_faces_the_same_way_from_the_same_seed(face):
    images = np.stack([face, np.fliplr(face), face[::-1]] * 100)  # (300, 48, 48)
    indices = np.arange(300)[::-1]
    capture = Capture(framing_errors=load_framing_errors())
    chosen, faces = captured_faces(images, indices, 0.3, np.random.default_rng(5), capture)
    again, same = captured_faces(images, indices, 0.3, np.random.default_rng(5), capture)
    assert np.array_equal(chosen, again) and np.array_equal(faces, same)
    assert 60 <= len(chosen) <= 120 and set(chosen) <= set(indices)
    assert faces.shape == (len(chosen), 48, 48) and faces.dtype == np.uint8
    changed = [not np.array_equal(f, images[i]) for i, f in zip(chosen, faces)]
    assert sum(changed) >= 0.9 * len(chosen)  # all but faces whose draws hold no effect (1 in 64)
    assert captured_faces(images, indices, 0.0, np.random.default_rng(5), capture)[0].size == 0


def test_the_shipped_framing_errors_are_the_default_detectors_and_read_back_as_written(tmp_path):
    errors = load_framing_errors()
    assert len(errors) >= 300  # faces MTCNN found in 300 scenes
    proxys = load_framing_errors(PROXY_FRAMING_ERRORS_FILE)
    assert len(proxys) >= 300 and not set(proxys) & set(errors)  # other scenes: the proxy's are never trained on
    assert abs(float(np.median([e.dx for e in errors]))) < 0.05  # framed to FER2013's crops: centred
    assert abs(float(np.median([e.log_scale for e in errors]))) < 0.1
    path = tmp_path / "errors.json"
    save_framing_errors(errors[:3], path, "a test")
    assert load_framing_errors(path) == errors[:3]


def test_unreadable_framing_errors_say_which_file(tmp_path):
    path = tmp_path / "errors.json"
    for content in ("not json", '{"source": "x"}', '{"dx_dy_log_scale": [[1, 2]]}'):
        path.write_text(content)
        with pytest.raises(FerError, match=f"cannot read framing errors from {path}"):
            load_framing_errors(path)
    with pytest.raises(FerError, match="cannot read framing errors from"):
        load_framing_errors(tmp_path / "missing.json")


def test_the_proxy_is_the_same_crops_every_time_and_each_condition_shares_a_faces_draws(face):
    images = np.stack([face, np.fliplr(face), face[::-1], face.T])
    first, again = proxy_crops(images), proxy_crops(images)
    assert list(first) == ["proxy"] and len(first["proxy"]) == 4
    assert all(np.array_equal(a, b) for a, b in zip(first["proxy"], again["proxy"]))
    conditions = proxy_crops(images, {"all": EFFECTS, "none": (), "jpeg": ("jpeg",)})
    assert all(np.array_equal(a, b) for a, b in zip(conditions["all"], first["proxy"]))
    assert all(np.array_equal(a, b) for a, b in zip(conditions["none"], images))
    other_seed = proxy_crops(images, seed=1)["proxy"]
    assert any(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(other_seed, first["proxy"]))
