"""MTCNN (Zhang et al., 2016), a cascade of three small CNNs, as fer's face detector, run by ONNX
Runtime on the CPU and by torch on a GPU (fer/detection/mtcnn_torch.py).

The weights are those of the `facenet-pytorch` 2.6.0 wheel on PyPI (MIT; ported there from
davidsandberg/facenet, MIT, which converted the authors' Caffe models), converted once to the three
ONNX files shipped in fer/detection/model_files/ (scripts/detectors/convert.py; NOTICE.md there).
They are checked against their sha256 when the detector is created. Nothing is downloaded.

Why MTCNN: on photos built from validation faces (bench/faces.py) it found 86% of the faces, Haar 62%
and BlazeFace 48%, with 1 false face per 100 photos (Haar 4.7), twice as fast as Haar; and it finds
the eyes and the mouth, by which fer crops faces at eye level (fer.detection.framing.Alignment). With
the departures from the paper below it finds 90%, with 0.7 false faces per 100 photos.

The cascade, as the paper and facenet-pytorch run it:
1. P-Net, fully convolutional, scans an image pyramid (first scale 12 / min_face, each next one
   PYRAMID_FACTOR times that) and proposes a box wherever a 12x12 window scores over the first
   threshold; proposals are merged by non-maximum suppression per scale, then across scales,
   corrected by P-Net's regression, and squared.
2. R-Net scores each proposal again from a 24x24 crop, and corrects it.
3. O-Net does the same from a 48x48 crop and also gives five keypoints (eyes, nose, mouth corners).
fer departs from the paper in stages 2 and 3: a proposal R-Net or O-Net narrowly rejects is looked at
again on a slightly larger box (WIDER_LOOKS).
Crops that reach past the image are padded with black, as the paper's code does.

`detections_many` runs the cascade over several images at once: P-Net once per pyramid level over
the images of one size, R-Net and O-Net once over all the images' crops. That is what keeps a GPU
busy (the API gathers concurrent requests' photos for it, api/gathering.py); on the CPU one image a
call is as fast, and a server runs one per core.
"""

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from fer.detection.base import Box, Detection, FaceCrops, aligned_crops, crop_boxes, pixel_boxes, shrunk_to
from fer.detection.framing import Alignment, Framing
from fer.detection.mtcnn_layers import HEADS
from fer.detection.shipped import cpu_session, model_file

# One of the three networks, ready to run: (N, 3, H, W) float32 input (see _network_input) -> its
# outputs as NumPy arrays, in HEADS order.
Network = Callable[[np.ndarray], list[np.ndarray]]

NETWORKS = ("pnet", "rnet", "onet")
MODEL_FILES = {network: f"mtcnn_{network}.onnx" for network in NETWORKS}  # in fer/detection/model_files/
KEYPOINTS = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")  # as seen in the image: left to right
# Per stage. The paper's code and facenet-pytorch use 0.6, 0.7, 0.7. Chosen on 600 tuning scenes
# (bench/scenes.py seeds 1 and 2, not the reported seed 0): these found 88.9% of the faces instead of
# 86.4%, with the same 0.65 false faces per 100 photos; (0.5, 0.5, 0.6) found 90.2% but with 1.35.
THRESHOLDS = (0.5, 0.5, 0.8)
PYRAMID_FACTOR = 0.709  # each pyramid level's scale over the last: about 1/sqrt(2), halving the area
# Pixels. FER2013's crops are 48 px: a smaller face holds less than the classifier learned from. On the
# tuning scenes 48 found 707 of 786 faces against 702 with 40 (the pyramid's scales fall differently;
# of the faces under 72 px, 180 of 210 against 182), and detection was 15% faster (docs/benchmarks.md).
MIN_FACE = 48
# The settings below were chosen on the 600 tuning scenes (docs/benchmarks.md): 702 of 786 faces found
# instead of the paper's cascade's 686, with the same false faces, at about the same speed.
# P-Net's proposals at one pyramid level are merged when they overlap by more than this (IoU). The
# paper's 0.5 keeps windows 4 pixels apart, whose IoU is exactly 0.5; merging them too sends a fifth
# fewer crops to R-Net, which pays for the wider looks.
LEVEL_NMS = 0.45
# Wider looks: a proposal R-Net or O-Net rejects narrowly (a score above the stage's floor, not above
# its threshold) is scored again on a box the first share larger around the same centre, and the
# better view counts: its score, its correction of the box and its keypoints. While a wider look raises
# the score but not past the threshold, the next share follows. Tight crops whose outline is cut off
# pass more often with a little more around them.
WIDER_LOOKS = {"rnet": (0.15, 0.3), "onet": (0.15,)}
LOOK_AGAIN_FLOOR = {"rnet": 0.1, "onet": 0.3}
P_NET_CELL, P_NET_STRIDE = 12, 2  # P-Net sees 12x12 windows every 2 pixels of the scaled image
CROPS_PER_RUN = 64  # R-Net and O-Net inputs per ONNX Runtime run (see _run_on_crops)
CROPS_PER_GPU_RUN = 1024  # the same on a GPU, where a small batch leaves it idle
FRAMING = Framing(side=1.103, dx=0.005, dy=-0.014)  # fitted by bench/framing.py (docs/benchmarks.md)
# The same fit; used unless alignment=None. kept_tilt, chosen on tuning scenes (seeds 1-3): with 0.3
# the pipeline was right end to end 1.1 points more often than levelling the eyes fully (+1.3, +0.3,
# +1.7), and 0.4 more on scenes without their turns (seed 3; docs/benchmarks.md). It is near what
# undoing the scenes' turns alone would keep: FER2013's own tilt varies by 9.2 degrees, the scenes'
# turns by 11.5 (uniform to 20), and 9.2^2 / (9.2^2 + 11.5^2) = 0.39.
ALIGNMENT = Alignment(side=2.525, right=-0.013, down=0.278, kept_tilt=0.3)


def load_networks(threads: int | None = None, device: str = "cpu") -> dict[str, Network]:
    """P-Net, R-Net and O-Net by name, from the shipped files: on the CPU as ONNX Runtime sessions of
    `threads` threads each, on any other device (as torch names it: "cuda:0") in torch."""
    paths = {network: model_file(name) for network, name in MODEL_FILES.items()}
    if device != "cpu":
        from fer.detection.mtcnn_torch import TorchNetwork

        return {network: TorchNetwork.from_onnx(network, path, device) for network, path in paths.items()}
    networks = {}
    for network, path in paths.items():
        session = cpu_session(path, threads)
        networks[network] = lambda images, session=session: session.run(None, {"image": images})
    return networks


class MtcnnFaceDetector:
    """Faces as (x, y, w, h) boxes, largest first, like every fer detector; `detections` also gives
    each face's five keypoints and score. Safe to share between threads (ONNX Runtime sessions and
    torch in inference mode are)."""

    name = "mtcnn"
    uses_color = True  # trained on color photos: the Predictor hands it RGB when the image has color

    def __init__(
        self,
        min_face: int = MIN_FACE,
        thresholds: tuple[float, float, float] = THRESHOLDS,
        max_side: int | None = 1280,
        threads: int | None = 1,
        networks: dict[str, Network] | None = None,
        framing: Framing | None = None,
        alignment: Alignment | None = ALIGNMENT,
        device: str = "cpu",
    ) -> None:
        """`min_face`: the smallest face side looked for, in pixels (of the image scaled to `max_side`).
        `max_side`: larger images are scaled down to this longest side first, as HaarFaceDetector
        does; boxes are given in the original's pixels. `threads`: ONNX Runtime's per call. One by
        default: the networks are too small to gain from more (53 photos/s with one thread, 54 with
        two, on 640x480 photos), and a server runs one detection per core in parallel. `device`:
        "cpu" runs the networks in ONNX Runtime, a GPU as torch names it ("cuda:0") in torch there."""
        if min_face < P_NET_CELL:
            raise ValueError(f"min_face must be at least {P_NET_CELL} pixels, not {min_face}")
        self.min_face, self.thresholds, self.max_side = min_face, tuple(thresholds), max_side
        self.framing = framing or FRAMING
        self.alignment = alignment
        self.device = device
        self.networks = networks or load_networks(threads=threads, device=device)
        self.crops_per_run = CROPS_PER_RUN if device == "cpu" else CROPS_PER_GPU_RUN

    def detect(self, image: np.ndarray) -> list[Box]:
        return pixel_boxes([detection.box for detection in self.detections(image)], *image.shape[:2])

    def crop_faces_many(self, images: Sequence[np.ndarray], grays: Sequence[np.ndarray]) -> list[FaceCrops]:
        """Each image's faces, largest first, and their (N, 48, 48) crops from its grayscale frame:
        aligned at eye level by `alignment`, or, when it is None, the boxes framed by `framing`. One
        run of each network for all the images (see detections_many)."""
        return [self._crops(gray, detections) for gray, detections in zip(grays, self.detections_many(images))]

    def _crops(self, gray: np.ndarray, detections: list[Detection]) -> FaceCrops:
        height, width = gray.shape[:2]
        if self.alignment is None:
            boxes = pixel_boxes([detection.box for detection in detections], height, width)
            return crop_boxes(gray, [self.framing.apply(box, width, height) for box in boxes])
        return aligned_crops(gray, detections, self.alignment)

    def detections(self, image: np.ndarray) -> list[Detection]:
        """(H, W, 3) RGB or (H, W) grayscale uint8 -> the faces found, highest score first."""
        return self.detections_many([image])[0]

    def detections_many(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """detections for several images, with one run of each network for all of them (P-Net: one a
        pyramid level for the images of one size). The faces found are the same as one image at a
        time; on a GPU it is many times fewer, larger runs."""
        prepared = [self._working_copy(image) for image in images]
        pyramids, boxes = self._propose([rgb for rgb, _ in prepared])
        boxes = self._refine(pyramids, boxes)
        return [
            [
                Detection(tuple(float(v) / shrink for v in (x0, y0, x1 - x0, y1 - y0)), points / shrink, float(score))
                for (x0, y0, x1, y1, score), points in zip(final, keypoints)
            ]
            for (final, keypoints), (_, shrink) in zip(self._finish(pyramids, boxes), prepared)
        ]

    def _working_copy(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The image as float32 RGB no longer than max_side, and the factor it was shrunk by."""
        rgb, shrink = shrunk_to(cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image, self.max_side)
        return np.ascontiguousarray(rgb, np.float32), shrink

    def _run_on_crops(
        self, network: str, pyramids: list[list[np.ndarray]], boxes: list[np.ndarray], side: int
    ) -> list[list[np.ndarray]]:
        """The network's outputs for every image's boxes' crops, per image, `crops_per_run` crops a
        run: a photo of a crowd can give thousands of proposals, and one run over all of them made ONNX
        Runtime keep a gigabyte of activations (a grid of 520 faces: 1.4 GB peak RSS)."""
        counts = [len(image_boxes) for image_boxes in boxes]
        owners, every_box = np.repeat(np.arange(len(boxes)), counts), np.concatenate(boxes)
        runs = []
        for start in range(0, len(every_box), self.crops_per_run):
            run = slice(start, start + self.crops_per_run)
            run_owners, run_boxes = owners[run], every_box[run]
            # Boxes are in image order, so each image's crops in this run are together and in order.
            batch = [crops(pyramids[image], run_boxes[run_owners == image], side) for image in np.unique(run_owners)]
            runs.append(self.networks[network](_network_input(np.concatenate(batch))))
        outputs = [np.concatenate(output) for output in zip(*runs)]
        ends = np.cumsum(counts)[:-1]
        return [list(image_outputs) for image_outputs in zip(*(np.split(output, ends) for output in outputs))]

    def _propose(self, images: list[np.ndarray]) -> tuple[list[list[np.ndarray]], list[np.ndarray]]:
        """Stage 1: each image's pyramid, its levels largest first, the image itself the first (the later
        stages crop from them), and its (N, 5) squared boxes x0 y0 x1 y1 score from P-Net."""
        pyramids, found = [[rgb] for rgb in images], [[] for _ in images]
        same_size: dict[tuple[int, int], list[int]] = {}
        for index, rgb in enumerate(images):
            same_size.setdefault(rgb.shape[:2], []).append(index)
        for (height, width), indices in same_size.items():
            for scale in pyramid(height, width, self.min_face):
                # Each level from the one before, not from the image: the same area averaging, 6x faster
                # (OpenCV's INTER_AREA is slow at large non-integer ratios).
                size = (int(width * scale + 1), int(height * scale + 1))
                for index in indices:
                    pyramids[index].append(cv2.resize(pyramids[index][-1], size, interpolation=cv2.INTER_AREA))
                levels = np.stack([pyramids[index][-1] for index in indices])
                regression, face = self.networks["pnet"](_network_input(levels))
                for row, index in enumerate(indices):
                    boxes = proposals(regression[row], face[row, 1], scale, self.thresholds[0])
                    found[index].append(boxes[nms(boxes[:, :4], boxes[:, 4], LEVEL_NMS)])
        return pyramids, [_merged_proposals(image_found) for image_found in found]

    def _refine(self, pyramids: list[list[np.ndarray]], boxes: list[np.ndarray]) -> list[np.ndarray]:
        """Stage 2: R-Net keeps and corrects each image's proposals."""
        if not sum(map(len, boxes)):
            return boxes
        refined = []
        outputs = self._look("rnet", pyramids, boxes, 24)
        for image_boxes, (regression, face) in zip(boxes, outputs):
            keep = face[:, 1] > self.thresholds[1]
            kept = np.concatenate([image_boxes[keep, :4], face[keep, 1:2]], 1)
            picked = nms(kept[:, :4], kept[:, 4], 0.7)
            refined.append(square(correct(kept[picked], regression[keep][picked])))
        return refined

    def _look(
        self, network: str, pyramids: list[list[np.ndarray]], boxes: list[np.ndarray], side: int
    ) -> list[list[np.ndarray]]:
        """R-Net's or O-Net's outputs (in HEADS order) for each image's boxes, from `side`-pixel crops;
        where a narrowly rejected box seen wider (WIDER_LOOKS) scored better, that view's outputs, as
        seen from the box itself."""
        outputs = self._run_on_crops(network, pyramids, boxes, side)
        heads = [name for name, _, _ in HEADS[network]]
        at = heads.index("face")
        threshold = self.thresholds[1 if network == "rnet" else 2]
        looking = [(out[at][:, 1] > LOOK_AGAIN_FLOOR[network]) & (out[at][:, 1] <= threshold) for out in outputs]
        for share in WIDER_LOOKS[network]:
            if not any(rows.any() for rows in looking):
                break
            wider = [enlarge(image_boxes[rows], share) for image_boxes, rows in zip(boxes, looking)]
            for image_outputs, rows, seen in zip(outputs, looking, self._run_on_crops(network, pyramids, wider, side)):
                indices = np.flatnonzero(rows)
                raised = seen[at][:, 1] > image_outputs[at][indices, 1]
                better = indices[raised]
                for head, output, wider_output in zip(heads, image_outputs, seen):
                    output[better] = as_seen_from_proposal(head, wider_output[raised], share)
                rows[:] = False  # the next, wider look: for those this one raised, but not past the threshold
                rows[better] = image_outputs[at][better, 1] <= threshold
        return outputs

    def _finish(self, pyramids: list[list[np.ndarray]], boxes: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Stage 3: each image's final boxes (N, 5) and keypoints (N, 5, 2) from O-Net, best first."""
        if not sum(map(len, boxes)):
            return [(image_boxes[:, :5], np.zeros((0, len(KEYPOINTS), 2), np.float32)) for image_boxes in boxes]
        finished = []
        for image_boxes, (regression, points, face) in zip(boxes, self._look("onet", pyramids, boxes, 48)):
            keep = face[:, 1] > self.thresholds[2]
            kept = np.concatenate([image_boxes[keep, :4], face[keep, 1:2]], 1)
            keypoints = keypoints_in_pixels(kept, points[keep])
            kept = correct(kept, regression[keep])
            picked = nms(kept[:, :4], kept[:, 4], 0.7, by_smaller=True)
            finished.append((kept[picked], keypoints[picked]))
        return finished


def _merged_proposals(found: list[np.ndarray]) -> np.ndarray:
    """One image's P-Net boxes over all scales, merged across scales, corrected by P-Net's regression
    and squared: (N, 5)."""
    boxes = np.concatenate(found) if found else np.zeros((0, 9), np.float32)
    boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
    sides = (boxes[:, 2:4] - boxes[:, 0:2])[:, [0, 1, 0, 1]]  # P-Net's corrections are in box sides
    corrected = boxes[:, :4] + boxes[:, 5:9] * sides
    return square(np.concatenate([corrected, boxes[:, 4:5]], 1))


def pyramid(height: int, width: int, min_face: int) -> list[float]:
    """The scales at which P-Net's 12-pixel window is a face of min_face pixels, then 0.709 times
    smaller each, while the scaled image's shorter side holds a window."""
    scale, scales = P_NET_CELL / min_face, []
    while min(height, width) * scale >= P_NET_CELL:
        scales.append(scale)
        scale *= PYRAMID_FACTOR
    return scales


def proposals(regression: np.ndarray, face: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """P-Net's (4, h, w) regression and (h, w) face scores at one scale -> (N, 9) boxes in the image:
    x0 y0 x1 y1 score, then the four corrections."""
    rows, columns = np.nonzero(face >= threshold)
    cells = np.stack([columns, rows], 1).astype(np.float32)
    starts = np.floor((P_NET_STRIDE * cells + 1) / scale)
    ends = np.floor((P_NET_STRIDE * cells + P_NET_CELL) / scale)
    return np.concatenate([starts, ends, face[rows, columns, np.newaxis], regression[:, rows, columns].T], 1)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, by_smaller: bool = False) -> np.ndarray:
    """Indices of (x0, y0, x1, y1) boxes kept by greedy non-maximum suppression, best first: a box is
    dropped when it overlaps a better one by more than `threshold`. Overlap is IoU, computed by
    OpenCV (20x faster than in Python, with the same picks); `by_smaller`: over the smaller box's
    area instead (O-Net's last pass, a few boxes: drops a box inside another)."""
    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    if not by_smaller:
        sides = np.concatenate([boxes[:, :2], boxes[:, 2:4] - boxes[:, :2]], 1).astype(np.float64)
        return np.asarray(cv2.dnn.NMSBoxes(sides, scores.astype(np.float32), 0.0, threshold), np.int64).ravel()
    order, keep = np.argsort(-scores, kind="stable"), []
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(best)
        corners = boxes[rest]
        width = np.clip(np.minimum(boxes[best, 2], corners[:, 2]) - np.maximum(boxes[best, 0], corners[:, 0]), 0, None)
        height = np.clip(np.minimum(boxes[best, 3], corners[:, 3]) - np.maximum(boxes[best, 1], corners[:, 1]), 0, None)
        areas = (corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1])
        own = (boxes[best, 2] - boxes[best, 0]) * (boxes[best, 3] - boxes[best, 1])
        order = rest[width * height / np.maximum(np.minimum(areas, own), 1e-9) <= threshold]
    return np.array(keep, dtype=np.int64)


def correct(boxes: np.ndarray, regression: np.ndarray) -> np.ndarray:
    """Boxes (N, 5) moved by R-Net's or O-Net's (N, 4) corrections, given in box sides."""
    sides = (boxes[:, 2:4] - boxes[:, 0:2] + 1)[:, [0, 1, 0, 1]]
    return np.concatenate([boxes[:, :4] + regression * sides, boxes[:, 4:5]], 1)


def enlarge(boxes: np.ndarray, share: float) -> np.ndarray:
    """Boxes (N, 5) grown by `share` of their sides (counted as `correct` counts them), around the same
    centre."""
    grown = boxes.copy()
    margins = (boxes[:, 2:4] - boxes[:, 0:2] + 1) * share / 2
    grown[:, 0:2] -= margins
    grown[:, 2:4] += margins
    return grown


def correction_of_enlarged(regression: np.ndarray, share: float) -> np.ndarray:
    """A correction (N, 4) found for `enlarge(boxes, share)`, as the same move of `boxes` themselves:
    correct(enlarge(b, s), r) and correct(b, correction_of_enlarged(r, s)) give the same corners."""
    return regression * (1 + share) + np.array([-share, -share, share, share], np.float32) / 2


def keypoints_in_pixels(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """O-Net's (N, 10) keypoints (x of the five, then y, in box sides from the box's corner) for boxes
    (N, 4+) as (N, 5, 2) x, y in the image's pixels, counted as the paper's code counts them."""
    sides = boxes[:, 2:4] - boxes[:, 0:2] + 1
    return np.stack([points[:, :5] * sides[:, :1], points[:, 5:] * sides[:, 1:]], 2) + boxes[:, np.newaxis, :2] - 1


def as_seen_from_proposal(head: str, values: np.ndarray, share: float) -> np.ndarray:
    """A head's outputs for `enlarge(boxes, share)`, as outputs for `boxes` themselves: corrections and
    keypoints are given in box sides from the box's corner, scores need nothing."""
    if head == "regression":
        return correction_of_enlarged(values, share)
    if head == "keypoints":  # x of each point, then y: at p of the wider box is at p * (1 + share) - share / 2
        return values * (1 + share) - share / 2
    return values


def square(boxes: np.ndarray) -> np.ndarray:
    """Each (x0, y0, x1, y1, score) box as the square of its longer side around the same centre."""
    sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    centres = (boxes[:, 0:2] + boxes[:, 2:4]) / 2
    return np.concatenate([centres - sides[:, None] / 2, centres + sides[:, None] / 2, boxes[:, 4:5]], 1)


def crops(levels: list[np.ndarray], boxes: np.ndarray, side: int) -> np.ndarray:
    """(N, side, side, 3) crops of the boxes, black where a box reaches past the image. Box corners
    count pixels from 1, as in the paper's MATLAB code, whose arithmetic the cascade keeps.

    `levels`: the image, then its pyramid, largest first. A box is cut from the smallest level that
    still holds it at `side` pixels or more, by a bilinear warp that shrinks it by 1.41x at most (a
    level is 0.709 of the one before): area-averaging a large box down from the image itself took most
    of the crops' time (a photo's 90 proposals: 5 ms of a 27 ms detection). Boxes the pyramid holds
    too small are area-averaged from the image."""
    rgb = levels[0]
    height, width = rgb.shape[:2]
    out = np.zeros((len(boxes), side, side, 3), np.float32)
    for index, (x0, y0, x1, y1) in enumerate(np.trunc(boxes[:, :4]).astype(np.int64) - 1):
        box_width, box_height = x1 - x0 + 1, y1 - y0 + 1
        if box_width < 1 or box_height < 1:
            continue
        level = next((level for level in reversed(levels[1:]) if box_width * level.shape[1] / width >= side), None)
        if level is not None:
            # Edges of the box in the level's pixels, mapped onto the crop's; warpAffine counts from
            # pixel centres, hence the half pixels.
            scale_x, scale_y = level.shape[1] / width, level.shape[0] / height
            step_x, step_y = box_width * scale_x / side, box_height * scale_y / side
            matrix = np.array(
                [[step_x, 0, x0 * scale_x + step_x / 2 - 0.5], [0, step_y, y0 * scale_y + step_y / 2 - 0.5]]
            )
            out[index] = cv2.warpAffine(
                level, matrix, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0
            )
            continue
        left, top, right, bottom = max(x0, 0), max(y0, 0), min(x1 + 1, width), min(y1 + 1, height)
        if (left, top, right, bottom) == (x0, y0, x1 + 1, y1 + 1):  # inside the image: no copy needed
            canvas = rgb[top:bottom, left:right]
        else:
            canvas = np.zeros((box_height, box_width, 3), np.float32)
            if right > left and bottom > top:
                canvas[top - y0 : bottom - y0, left - x0 : right - x0] = rgb[top:bottom, left:right]
        shrinking = box_width > side or box_height > side
        out[index] = cv2.resize(canvas, (side, side), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return out


def _network_input(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) float RGB 0..255 -> (N, 3, H, W) as the networks were trained: (x - 127.5) / 128."""
    return np.ascontiguousarray(((images - 127.5) * 0.0078125).transpose(0, 3, 1, 2), np.float32)
