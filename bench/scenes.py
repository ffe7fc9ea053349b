"""Photos built from FER2013 faces at known places, for measuring face detection end to end (issue 11).

    scenes = build_scenes(faces, labels, count=300, seed=0)   # faces: (N, 48, 48) uint8, validation split
    for scene in scenes:
        scene.encoded, scene.faces   # the 640x480 photo's file bytes; each face's box, label and source index

A scene is a 640x480 grayscale photo (stored as RGB JPEG) of one face, or two in SECOND_FACE_SHARE of
them, each scaled from 48x48 to a side of 48-320 pixels (log-uniform), turned by up to 20 degrees,
on one of four kinds of background (blurred noise, a gradient, sine gratings, blurred shapes), under
changed lighting (gain, offset, gamma, and a shadow across the photo in a third of them), saved at a
JPEG quality of 50-95. Everything comes from `seed`: the same arguments give the same bytes.

A face's box is its square as placed (before turning), in the photo's pixels: FER2013 crops are tight
around the face, so this is the frame the classifier was trained on.

`without` switches effects off to measure what each costs: "lighting", "jpeg" (then the photo is
stored as PNG, losslessly) or "turn". The random draws stay the same, so the same seed gives the
same faces at the same places and sizes, with only those effects left out.

`edges="soft"` fades each face into the background over the outer SOFT_EDGE_SHARE of its side
instead of pasting it with the hard edges of its square, again from the same draws: what the square
border, which no real face has, costs a detector.
"""

from dataclasses import dataclass

import cv2
import numpy as np

WIDTH, HEIGHT = 640, 480
SMALLEST_FACE, LARGEST_FACE = 48, 320
MAX_TURN_DEGREES = 20.0
SECOND_FACE_SHARE = 0.3
BACKGROUNDS = ("noise", "gradient", "gratings", "shapes")
EFFECTS = ("lighting", "jpeg", "turn")  # what `without` can switch off
EDGES = ("hard", "soft")  # how a face meets the background
SOFT_EDGE_SHARE = 0.15  # of a face's side, on each side: soft edges leave its middle 70% as it is

Box = tuple[int, int, int, int]  # x, y, width, height


@dataclass(frozen=True)
class PlacedFace:
    box: Box
    label: int
    index: int  # into the faces the scenes were built from
    degrees: float


@dataclass(frozen=True)
class Scene:
    encoded: bytes  # the photo's file: JPEG, or PNG when built without "jpeg"
    faces: tuple[PlacedFace, ...]
    background: str
    quality: int | None  # JPEG quality; None: stored losslessly (without "jpeg")


def build_scenes(
    faces: np.ndarray,
    labels: np.ndarray,
    count: int,
    seed: int = 0,
    without: frozenset[str] = frozenset(),
    edges: str = "hard",
) -> list[Scene]:
    """`count` scenes from (N, 48, 48) uint8 faces and their labels; each face is used at most once
    while there are faces left. `without`: effects of EFFECTS left out; `edges`: one of EDGES."""
    unknown = set(without) - set(EFFECTS)
    if unknown:
        raise ValueError(f"unknown effects {sorted(unknown)}; choose from {', '.join(EFFECTS)}")
    if edges not in EDGES:
        raise ValueError(f"unknown edges {edges!r}; choose from {', '.join(EDGES)}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(faces))
    scenes, next_face = [], 0
    for number in range(count):
        background = BACKGROUNDS[number % len(BACKGROUNDS)]
        photo = _background(rng, background)
        wanted = 2 if rng.random() < SECOND_FACE_SHARE else 1
        placed: list[PlacedFace] = []
        for _ in range(wanted):
            index = int(order[next_face % len(order)])
            largest, turn = LARGEST_FACE // wanted, "turn" not in without
            face = _place(rng, photo, faces[index], int(labels[index]), index, placed, largest, turn, edges)
            if face is not None:
                placed.append(face)
                next_face += 1
        relit = _relight(rng, photo)
        photo = relit if "lighting" not in without else np.clip(photo, 0, 255).astype(np.uint8)
        quality = int(rng.integers(50, 96))
        bgr = cv2.cvtColor(photo, cv2.COLOR_GRAY2BGR)
        if "jpeg" in without:
            quality = None
            ok, encoded = cv2.imencode(".png", bgr)
        else:
            ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        scenes.append(Scene(encoded.tobytes(), tuple(placed), background, quality))
    return scenes


def _background(rng: np.random.Generator, kind: str) -> np.ndarray:
    """(HEIGHT, WIDTH) float32 in 0..255."""
    if kind == "noise":
        noise = rng.normal(0, 1, (HEIGHT, WIDTH)).astype(np.float32)
        sigma = float(rng.uniform(2, 10))
        image = cv2.GaussianBlur(noise, (0, 0), sigma)
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        image = np.cos(angle) * xs + np.sin(angle) * ys + rng.normal(0, 8, (HEIGHT, WIDTH)).astype(np.float32)
    elif kind == "gratings":
        ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        image = np.zeros((HEIGHT, WIDTH), np.float32)
        for _ in range(3):
            angle, period = rng.uniform(0, np.pi), rng.uniform(8, 120)
            phase = rng.uniform(0, 2 * np.pi)
            image += np.sin((np.cos(angle) * xs + np.sin(angle) * ys) * 2 * np.pi / period + phase)
    else:  # shapes: ellipses, rectangles and lines of random greys, softened
        image = np.full((HEIGHT, WIDTH), rng.uniform(40, 215), np.float32)
        for _ in range(int(rng.integers(15, 40))):
            grey = float(rng.uniform(0, 255))
            x, y = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
            a, b = int(rng.integers(5, 120)), int(rng.integers(5, 120))
            shape = rng.integers(0, 3)
            if shape == 0:
                cv2.ellipse(image, (x, y), (a, b), float(rng.uniform(0, 180)), 0, 360, grey, -1)
            elif shape == 1:
                cv2.rectangle(image, (x, y), (x + a, y + b), grey, -1)
            else:
                cv2.line(image, (x, y), (x + a * 3, y - b * 3), grey, int(rng.integers(1, 12)))
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.5, 3)))
    low, high = float(image.min()), float(image.max())
    floor, ceiling = sorted(rng.uniform(0, 255, 2))
    ceiling = max(ceiling, floor + 40)
    return (image - low) / max(high - low, 1e-6) * (ceiling - floor) + floor


def _place(
    rng: np.random.Generator,
    photo: np.ndarray,
    face: np.ndarray,
    label: int,
    index: int,
    placed: list[PlacedFace],
    largest: int,
    turn: bool = True,
    edges: str = "hard",
) -> PlacedFace | None:
    """Paste `face`, scaled and turned (unless not `turn`), where it overlaps no face already placed;
    None if no place is found in 50 tries."""
    side = int(round(np.exp(rng.uniform(np.log(SMALLEST_FACE), np.log(largest)))))
    drawn = float(rng.uniform(-MAX_TURN_DEGREES, MAX_TURN_DEGREES))
    # Places are found for the drawn turn either way, so that a scene without turns has its faces
    # where the scene with them has them.
    reach = int(np.ceil(side * (abs(np.cos(np.radians(drawn))) + abs(np.sin(np.radians(drawn)))) / 2))
    degrees = drawn if turn else 0.0
    for _ in range(50):
        cx, cy = int(rng.integers(reach, WIDTH - reach)), int(rng.integers(reach, HEIGHT - reach))
        box = (cx - side // 2, cy - side // 2, side, side)
        if all(_overlap(box, other.box, margin=reach - side // 2) == 0 for other in placed):
            break
    else:
        return None
    scaled = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    # Turn the face about its centre, in the photo's frame: warp the face and a mask of its square.
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), degrees, 1.0)
    matrix[:, 2] += (cx - side / 2, cy - side / 2)
    turned = cv2.warpAffine(scaled, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(_square_mask(side, edges), matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
    photo *= 1 - mask
    photo += turned * mask
    return PlacedFace(box, label, index, degrees)


def _square_mask(side: int, edges: str) -> np.ndarray:
    """(side, side) float32 weights of the face over the background: 1 everywhere for hard edges; for
    soft ones rising linearly from the border to 1 at SOFT_EDGE_SHARE of the side in."""
    if edges == "hard":
        return np.ones((side, side), np.float32)
    from_border = np.minimum(np.arange(side), np.arange(side)[::-1]) + 0.5  # pixels from the nearer edge
    ramp = np.clip(from_border / (SOFT_EDGE_SHARE * side), 0, 1).astype(np.float32)
    return np.minimum.outer(ramp, ramp)


def _overlap(a: Box, b: Box, margin: int = 0) -> int:
    """Overlapping area of two boxes, each grown by `margin` on every side."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]) + 2 * margin
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]) + 2 * margin
    return max(0, width) * max(0, height)


def _relight(rng: np.random.Generator, photo: np.ndarray) -> np.ndarray:
    """Gain, offset and gamma over the whole photo, and in a third of the photos a shadow across it."""
    image = np.clip(photo * rng.uniform(0.6, 1.4) + rng.uniform(-30, 30), 0, 255)
    image = 255 * (image / 255) ** rng.uniform(0.7, 1.4)
    if rng.random() < 1 / 3:
        angle = rng.uniform(0, 2 * np.pi)
        ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        ramp = (np.cos(angle) * (xs - WIDTH / 2) + np.sin(angle) * (ys - HEIGHT / 2)) / max(WIDTH, HEIGHT)
        image *= 1 - rng.uniform(0.3, 0.6) * np.clip(ramp + 0.5, 0, 1)
    return np.clip(image, 0, 255).astype(np.uint8)
