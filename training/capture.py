"""What a camera and a face detector do to a face before the classifier sees it, as seeded transforms
of a FER2013 face: the validation proxy for real photos (bench/capture.py, issue 30), and a capture
augmentation a student can learn from.

    capture = Capture(framing_errors=errors)            # errors: measured from a detector, see below
    draws = capture.draw(np.random.default_rng([seed, index]))
    crop = capture.apply(face, draws)                   # every effect the draws make present
    crop = capture.apply(face, draws, effects={"jpeg"}) # the same draws, only JPEG applied

The effects, in the order a photo meets them:
- light: gamma (log-uniform in 1/GAMMA..GAMMA) and light that falls off across the face (a linear
  ramp of up to +-MAX_LIGHT_SLOPE of the brightness, in a random direction);
- framing: the crop a detector hands the classifier, off centre and too large or small: one of the
  detector's measured errors, drawn at random (FramingError, from bench/capture.py's scenes);
- turn: the head or the camera turned by up to MAX_TURN_DEGREES;
- blur: lens and motion, a Gaussian of sigma in BLUR_SIGMA, in pixels of the 48x48 face;
- resolution: the face's side in the photo, log-uniform from SMALLEST_SIDE to 48 pixels; the crop
  comes back at that size, and the predictor scales it to 48x48 as it scales any crop;
- jpeg: saved at a quality from JPEG_QUALITY.
Outside the 48x48 face there are no pixels, so a crop that reaches past it repeats its border.

A real photo has some of these, not all: each effect is present in a face with probability
PRESENT_SHARE. A face's draws (CaptureDraws) hold every random number, whether each effect is
present included, whichever effects are then applied: what each effect costs is measured on the same
draws, and on the same faces it is present in.
"""

import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fer.errors import FerError
from fer.preprocess import to_gray48

# The default detector's errors, measured by bench/capture.py --save-framing-errors on 300 scenes of
# validation faces: the proxy's on seed 0, and the trainer's --capture on seed 1, so that the proxy's
# own errors are never trained on (docs/benchmarks.md, "The capture proxy").
FRAMING_ERRORS_FILE = Path(__file__).with_name("mtcnn_framing_errors.json")
PROXY_FRAMING_ERRORS_FILE = Path(__file__).with_name("mtcnn_framing_errors_proxy.json")
PROXY_SEED = 0  # the proxy's draws: face i's come from np.random.default_rng([PROXY_SEED, i])
EFFECTS = ("light", "framing", "turn", "blur", "resolution", "jpeg")
# A real photo has some of these, not all: each effect is present in a face with this probability.
PRESENT_SHARE = 0.5
GAMMA = 1.6
MAX_LIGHT_SLOPE = 0.3
MAX_TURN_DEGREES = 10.0
BLUR_SIGMA = (0.3, 1.0)  # pixels of the 48x48 face
SMALLEST_SIDE = 24  # MTCNN's smallest face is 20 px; FER2013's faces are 48
JPEG_QUALITY = (20, 50)  # inclusive


@dataclass(frozen=True)
class FramingError:
    """Where a detector's crop lies against the face's true crop: its centre's offset, in true sides,
    and the log of its side over the true side."""

    dx: float
    dy: float
    log_scale: float

    @classmethod
    def between(cls, truth: tuple[int, int, int, int], found: tuple[int, int, int, int]) -> "FramingError":
        """From a true box and the detector's box (x, y, width, height); a box that is not square is
        taken at the geometric mean of its sides."""
        (tx, ty, tw, th), (x, y, w, h) = truth, found
        side = math.sqrt(tw * th)
        return cls(
            dx=(x + w / 2 - tx - tw / 2) / side,
            dy=(y + h / 2 - ty - th / 2) / side,
            log_scale=math.log(math.sqrt(w * h) / side),
        )


@dataclass(frozen=True)
class CaptureDraws:
    """One face's random numbers: which effects it has, and each effect's strength."""

    present: frozenset[str]
    gamma: float
    light_slope: float
    light_angle: float
    framing_error: FramingError | None
    degrees: float
    blur_sigma: float
    side: int
    jpeg_quality: int


@dataclass(frozen=True)
class Capture:
    framing_errors: tuple[FramingError, ...] = field(default=())  # none: the framing effect keeps the crop

    def draw(self, rng: np.random.Generator) -> CaptureDraws:
        """Every number, always, in one order, so that a seed gives the same draws whatever is applied."""
        present = frozenset(effect for effect in EFFECTS if rng.random() < PRESENT_SHARE)
        gamma = math.exp(rng.uniform(-math.log(GAMMA), math.log(GAMMA)))
        slope, angle = rng.uniform(0, MAX_LIGHT_SLOPE), rng.uniform(0, 2 * math.pi)
        error = self.framing_errors[int(rng.integers(len(self.framing_errors)))] if self.framing_errors else None
        return CaptureDraws(
            present=present, gamma=gamma, light_slope=slope, light_angle=angle, framing_error=error,
            degrees=rng.uniform(-MAX_TURN_DEGREES, MAX_TURN_DEGREES), blur_sigma=rng.uniform(*BLUR_SIGMA),
            side=round(math.exp(rng.uniform(math.log(SMALLEST_SIDE), math.log(48)))),
            jpeg_quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)),
        )  # fmt: skip

    def apply(self, face: np.ndarray, draws: CaptureDraws, effects: Collection[str] = EFFECTS) -> np.ndarray:
        """A (48, 48) uint8 face -> the uint8 grayscale crop the classifier would get from a photo of it,
        with those of `effects` that the face's draws make present."""
        unknown = set(effects) - set(EFFECTS)
        if unknown:
            raise ValueError(f"unknown capture effects {sorted(unknown)}; choose from {', '.join(EFFECTS)}")
        if face.shape != (48, 48) or face.dtype != np.uint8:
            raise ValueError(f"expected a (48, 48) uint8 face, got {face.shape} {face.dtype}")
        effects = draws.present.intersection(effects)
        pixels = face.astype(np.float32)
        if "light" in effects:
            pixels = _lit(pixels, draws.gamma, draws.light_slope, draws.light_angle)
        error = draws.framing_error if "framing" in effects else None
        pixels = _framed(pixels, error, draws.degrees if "turn" in effects else 0.0)
        if "blur" in effects:
            pixels = cv2.GaussianBlur(pixels, (0, 0), draws.blur_sigma, borderType=cv2.BORDER_REPLICATE)
        crop = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
        if "resolution" in effects and draws.side < 48:
            crop = cv2.resize(crop, (draws.side, draws.side), interpolation=cv2.INTER_AREA)
        if "jpeg" in effects:
            _, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, draws.jpeg_quality])
            crop = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
        return crop


def _lit(pixels: np.ndarray, gamma: float, slope: float, angle: float) -> np.ndarray:
    """Gamma, then brightness that changes linearly across the face, by up to +-slope at its edges."""
    lit = 255.0 * (pixels / 255.0) ** gamma
    coordinates = (np.arange(48, dtype=np.float32) - 23.5) / 23.5  # -1 at one edge, 1 at the other
    ramp = np.cos(angle) * coordinates[np.newaxis, :] + np.sin(angle) * coordinates[:, np.newaxis]
    return lit * (1.0 + slope * np.clip(ramp, -1.0, 1.0))


def _framed(pixels: np.ndarray, error: FramingError | None, degrees: float) -> np.ndarray:
    """The 48x48 crop whose centre, side and turn the detector's error and the head's turn give."""
    if error is None and degrees == 0.0:
        return pixels
    dx, dy, log_scale = (error.dx, error.dy, error.log_scale) if error else (0.0, 0.0, 0.0)
    scale = math.exp(log_scale)  # the crop's side over the face's: > 1 takes in more than the face
    # Output pixel -> input pixel: about the output's centre, turn, scale, then move to the crop's centre.
    turn = math.radians(degrees)
    cos, sin = math.cos(turn) * scale, math.sin(turn) * scale
    centre_x, centre_y = 23.5 + dx * 48, 23.5 + dy * 48
    matrix = np.array(
        [[cos, -sin, centre_x - cos * 23.5 + sin * 23.5], [sin, cos, centre_y - sin * 23.5 - cos * 23.5]],
        dtype=np.float64,
    )
    return cv2.warpAffine(
        pixels, matrix, (48, 48), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )


def save_framing_errors(errors: Sequence[FramingError], path: str | Path, source: str) -> None:
    """Write measured errors as JSON: `source` says how they were measured."""
    rows = ",\n".join(f"  [{e.dx:.5f}, {e.dy:.5f}, {e.log_scale:.5f}]" for e in errors)  # one face a line
    Path(path).write_text(f'{{"source": {json.dumps(source)},\n "dx_dy_log_scale": [\n{rows}\n]}}\n')


def load_framing_errors(path: str | Path = FRAMING_ERRORS_FILE) -> tuple[FramingError, ...]:
    try:
        rows = json.loads(Path(path).read_text())["dx_dy_log_scale"]
        return tuple(FramingError(float(dx), float(dy), float(log_scale)) for dx, dy, log_scale in rows)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FerError(f"cannot read framing errors from {path}: {error}") from None


def captured_faces(
    images: np.ndarray, indices: np.ndarray, share: float, rng: np.random.Generator, capture: Capture
) -> tuple[np.ndarray, np.ndarray]:
    """For the trainer's --capture: which of `indices` (into (N, 48, 48) uint8 `images`) get captured,
    each with probability `share`, and their (K, 48, 48) uint8 faces as the predictor would see them
    (the crop scaled back to 48x48 by fer.preprocess.to_gray48)."""
    chosen = indices[rng.random(len(indices)) < share]
    faces = np.empty((len(chosen), 48, 48), dtype=np.uint8)
    for row, index in enumerate(chosen):
        faces[row] = to_gray48(capture.apply(images[index], capture.draw(rng)))
    return chosen, faces


def proxy_crops(
    images: np.ndarray,
    conditions: dict[str, Collection[str]] | None = None,
    capture: Capture | None = None,
    seed: int = PROXY_SEED,
) -> dict[str, list[np.ndarray]]:
    """The capture proxy of (N, 48, 48) uint8 faces: for each condition (a name and the effects it
    applies; default {"proxy": EFFECTS}), every face's crop, from the face's own draws, the same for
    every condition. `capture` defaults to the proxy's (PROXY_FRAMING_ERRORS_FILE)."""
    conditions = conditions or {"proxy": EFFECTS}
    capture = capture or Capture(framing_errors=load_framing_errors(PROXY_FRAMING_ERRORS_FILE))
    crops: dict[str, list[np.ndarray]] = {name: [] for name in conditions}
    for index, face in enumerate(images):
        draws = capture.draw(np.random.default_rng([seed, index]))
        for name, effects in conditions.items():
            crops[name].append(capture.apply(face, draws, effects))
    return crops
