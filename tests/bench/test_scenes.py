"""bench/scenes.py: the photos the face-detection benchmark is measured on are what it says they are."""

import cv2
import numpy as np
import pytest

from bench.scenes import EFFECTS, HEIGHT, LARGEST_FACE, SMALLEST_FACE, WIDTH, build_scenes


@pytest.fixture(scope="module")
def faces():
    """Stand-ins for FER2013 faces: smooth random 48x48 images (a face has little fine detail)."""
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, (200, 48, 48)).astype(np.float32)
    smooth = np.stack([cv2.GaussianBlur(image, (0, 0), 2) for image in noise])
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255
    return smooth.astype(np.uint8), rng.integers(0, 7, 200)


def test_the_same_seed_gives_the_same_photos_and_another_seed_others(faces):
    first, again, other = (build_scenes(*faces, count=6, seed=seed) for seed in (0, 0, 1))
    assert [s.encoded for s in first] == [s.encoded for s in again]
    assert [s.encoded for s in first] != [s.encoded for s in other]


def test_faces_are_inside_the_photo_apart_and_within_the_sizes(faces):
    scenes = build_scenes(*faces, count=60, seed=0)
    counts = [len(scene.faces) for scene in scenes]
    assert set(counts) == {1, 2} and 5 <= counts.count(2) <= 35  # a third or so have a second face
    assert {scene.background for scene in scenes} == {"noise", "gradient", "gratings", "shapes"}
    for scene in scenes:
        assert 50 <= scene.quality <= 95
        for face in scene.faces:
            x, y, w, h = face.box
            assert w == h and SMALLEST_FACE <= w <= LARGEST_FACE
            assert 0 <= x and x + w <= WIDTH and 0 <= y and y + h <= HEIGHT
            assert abs(face.degrees) <= 20
        if len(scene.faces) == 2:
            (ax, ay, aw, ah), (bx, by, bw, bh) = (face.box for face in scene.faces)
            assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay  # no overlap


def test_each_box_holds_its_face(faces):
    images, labels = faces
    for scene in build_scenes(images, labels, count=10, seed=3):
        photo = cv2.imdecode(np.frombuffer(scene.encoded, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert photo.shape == (HEIGHT, WIDTH)
        for face in scene.faces:
            x, y, w, h = face.box
            inside = cv2.resize(photo[y : y + h, x : x + w], (48, 48), interpolation=cv2.INTER_AREA)
            turned_back = cv2.warpAffine(inside, cv2.getRotationMatrix2D((24, 24), -face.degrees, 1.0), (48, 48))[
                12:36, 12:36
            ].astype(float)
            source = images[face.index][12:36, 12:36].astype(float)
            correlation = np.corrcoef(turned_back.ravel(), source.ravel())[0, 1]
            assert correlation > 0.8, correlation  # lighting changes it, but it is this face
            assert face.label == labels[face.index]


def test_effects_left_out_leave_the_same_faces_at_the_same_places(faces):
    full = build_scenes(*faces, count=20, seed=4)
    bare = build_scenes(*faces, count=20, seed=4, without=frozenset(EFFECTS))
    for with_all, without_all in zip(full, bare):
        assert [(f.box, f.label, f.index) for f in with_all.faces] == [
            (f.box, f.label, f.index) for f in without_all.faces
        ]
        assert all(face.degrees == 0 for face in without_all.faces)
        assert without_all.quality is None and without_all.encoded.startswith(b"\x89PNG")
    images, _ = faces
    for scene in bare:  # unlit, unturned and lossless: each box holds its face as scaled, nothing else
        photo = cv2.imdecode(np.frombuffer(scene.encoded, np.uint8), cv2.IMREAD_GRAYSCALE)
        for face in scene.faces:
            x, y, w, h = face.box
            inside = cv2.resize(photo[y : y + h, x : x + w], (48, 48), interpolation=cv2.INTER_AREA)[2:-2, 2:-2]
            source = images[face.index][2:-2, 2:-2]
            assert np.corrcoef(inside.ravel().astype(float), source.ravel().astype(float))[0, 1] > 0.95
    lit_only = build_scenes(*faces, count=20, seed=4, without=frozenset({"jpeg", "turn"}))
    assert any(a.encoded != b.encoded for a, b in zip(lit_only, bare))  # lighting alone changes the photos


def test_an_unknown_effect_is_refused(faces):
    with pytest.raises(ValueError, match="unknown effects \\['blur'\\]; choose from lighting, jpeg, turn"):
        build_scenes(*faces, count=1, without=frozenset({"blur"}))


def test_soft_edges_fade_the_same_faces_into_the_background(faces):
    hard = build_scenes(*faces, count=20, seed=5, without=frozenset(EFFECTS))
    soft = build_scenes(*faces, count=20, seed=5, without=frozenset(EFFECTS), edges="soft")
    images, _ = faces
    for with_hard, with_soft in zip(hard, soft):
        assert [(f.box, f.label, f.index) for f in with_hard.faces] == [
            (f.box, f.label, f.index) for f in with_soft.faces
        ]
        hard_photo, soft_photo = (
            cv2.imdecode(np.frombuffer(scene.encoded, np.uint8), cv2.IMREAD_GRAYSCALE).astype(float)
            for scene in (with_hard, with_soft)
        )
        for face in with_hard.faces:
            x, y, side, _ = face.box
            middle = slice(round(0.2 * side), round(0.8 * side))
            assert (
                np.abs(
                    hard_photo[y : y + side, x : x + side][middle, middle]
                    - soft_photo[y : y + side, x : x + side][middle, middle]
                ).max()
                <= 1
            )
            # At the border the photo is mostly background: it moves away from the face and toward what
            # surrounds it, so the square's edge no longer shows.
            border_hard, border_soft = hard_photo[y, x + 1 : x + side - 1], soft_photo[y, x + 1 : x + side - 1]
            outside = soft_photo[y - 1, x + 1 : x + side - 1] if y > 0 else soft_photo[y + side, x + 1 : x + side - 1]
            assert np.abs(border_soft - outside).mean() < np.abs(border_hard - outside).mean()
    # Outside every face's square (and the pixel around it the warp's interpolation reaches) the
    # photos are the same.
    for with_hard, with_soft in zip(hard, soft):
        hard_photo, soft_photo = (
            cv2.imdecode(np.frombuffer(s.encoded, np.uint8), cv2.IMREAD_GRAYSCALE) for s in (with_hard, with_soft)
        )
        outside = np.ones(hard_photo.shape, bool)
        for face in with_hard.faces:
            x, y, side, _ = face.box
            outside[max(0, y - 2) : y + side + 2, max(0, x - 2) : x + side + 2] = False
        assert np.array_equal(hard_photo[outside], soft_photo[outside])


def test_unknown_edges_are_refused(faces):
    with pytest.raises(ValueError, match="unknown edges 'feathered'"):
        build_scenes(*faces, count=1, edges="feathered")
