"""Calibrate each face detector's framing (fer.detection.framing.Framing): how its boxes become crops framed as
FER2013 frames faces (issue 11), and for MTCNN its eye-level alignment (fer.detection.framing.Alignment); then
measure what each changes end to end.

    python bench/framing.py --data ../shared/data/fer2013.zip

The calibration is fitted on one set of scenes built from validation faces (--fit-seed, 1) and
measured on another (--seed, 0, the scenes bench/faces.py reports), so the figures are not those of
the faces it was fitted on. For each truth face a detector finds (IoU >= 0.3), with its box taken as
it comes (no framing): the truth crop's side over the box's size (the geometric mean of its sides),
and the centre's offset in box sizes. The framing is the median of each. The alignment likewise,
from the eyes' and the mouth's midpoints: the crop's side and its centre's offset along the face's own
axes, in eye-to-mouth distances.
"""

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
from faces import DETECTORS, decode, match, measure  # bench/faces.py, beside this script
from scenes import build_scenes

from fer.datasets import VALIDATION, load_splits, select_split
from fer.detection.framing import Alignment, Framing
from fer.detection.mtcnn import ALIGNMENT as MTCNN_ALIGNMENT
from fer.device import describe_device
from fer.predictor import Predictor


def fit_framing(detector, scenes) -> tuple[Framing, int]:
    """The median framing of the detector's raw boxes to the truth crops, and how many faces it saw."""
    detector.framing = Framing()
    sides, shifts = [], []
    for scene in scenes:
        truths = [face.box for face in scene.faces]
        boxes = detector.detect(decode(scene))
        for t, b in match(truths, boxes)[0].items():
            (tx, ty, tw, th), (x, y, w, h) = truths[t], boxes[b]
            size = (w * h) ** 0.5
            sides.append(tw / size)  # truth crops are square: tw == th
            shifts.append(((tx + tw / 2 - x - w / 2) / size, (ty + th / 2 - y - h / 2) / size))
    side, (dx, dy) = float(np.median(sides)), np.median(np.array(shifts), 0)
    return Framing(round(side, 3), round(float(dx), 3), round(float(dy), 3)), len(sides)


def fit_alignment(detector, scenes) -> tuple[Alignment, int]:
    """The median alignment of the detector's eyes and mouth to the truth crops (detectors with keypoints)."""
    sides, offsets = [], []
    for scene in scenes:
        truths = [face.box for face in scene.faces]
        detections = detector.detections(decode(scene))
        boxes = [detector.framing.apply(tuple(round(v) for v in found.box), 10**6, 10**6) for found in detections]
        for t, b in match(truths, boxes)[0].items():
            eyes, mouth = detections[b].keypoints[:2].mean(0), detections[b].keypoints[3:].mean(0)
            distance = float(np.hypot(*(mouth - eyes)))
            down = (mouth - eyes) / distance
            right = np.array([down[1], -down[0]])
            tx, ty, tw, th = truths[t]
            centre = np.array([tx + tw / 2, ty + th / 2]) - eyes
            sides.append(tw / distance)
            offsets.append((centre @ right / distance, centre @ down / distance))
    (right, down), side = np.median(np.array(offsets), 0), float(np.median(sides))
    return Alignment(round(side, 3), round(float(right), 3), round(float(down), 3)), len(sides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="FER2013 (zip, folder or csv): its validation split")
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--fit-seed", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--detectors", nargs="+", default=["mtcnn", "haar", "blazeface-384-t50"], choices=list(DETECTORS)
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    args = parser.parse_args()

    validation = select_split(load_splits(args.data), VALIDATION, args.data)
    fit_scenes = build_scenes(validation.images, validation.labels, args.scenes, args.fit_seed)
    scenes = build_scenes(validation.images, validation.labels, args.scenes, args.seed)
    report = {"machine": describe_device("cpu"), "fit_seed": args.fit_seed, "seed": args.seed, "detectors": {}}
    print(f"fitted on {args.scenes} scenes (seed {args.fit_seed}), measured on {args.scenes} (seed {args.seed})")
    columns = f"{'e2e before':>11}{'e2e fitted':>11}{'e2e shipped':>12}"
    print(f"{'detector':<20}{'calibration':<12}{'fitted':<28}{'shipped':<28}{columns}")
    for name in args.detectors:
        detector = DETECTORS[name]()
        aligns = hasattr(detector, "alignment")  # finds eyes and mouth: MTCNN, YuNet
        shipped_alignment = detector.alignment if aligns else None
        detector.alignment = None  # framing first, as for every detector
        shipped = detector.framing
        fitted, count = fit_framing(detector, fit_scenes)
        predictor = Predictor.load(detector=detector)
        figures = {"framing": {"fitted_on_faces": count, "fitted": vars(fitted), "shipped": vars(shipped)}}
        for label, framing in (("before", Framing()), ("fitted", fitted), ("shipped", shipped)):
            detector.framing = framing
            figures["framing"][f"end_to_end_{label}"] = measure(predictor, scenes, validation.images)[
                "end_to_end_accuracy"
            ]
        rows = [("framing", fitted, shipped, figures["framing"])]
        if aligns:  # a detector that finds eyes and mouth: align, after framing
            detector.framing = shipped
            aligned, count = fit_alignment(detector, fit_scenes)
            # The share of tilt kept is chosen, not fitted: MTCNN's choice (fer/detection/mtcnn.py) for
            # a detector that has none yet.
            kept_tilt = shipped_alignment.kept_tilt if shipped_alignment else MTCNN_ALIGNMENT.kept_tilt
            aligned = dataclasses.replace(aligned, kept_tilt=kept_tilt)
            shipped_alignment = shipped_alignment or aligned  # none shipped yet: the fit is what would ship
            figures["alignment"] = {
                "fitted_on_faces": count,
                "fitted": vars(aligned),
                "shipped": vars(shipped_alignment),
            }
            figures["alignment"]["end_to_end_before"] = figures["framing"]["end_to_end_shipped"]
            for label, alignment in (("fitted", aligned), ("shipped", shipped_alignment)):
                detector.alignment = alignment
                figures["alignment"][f"end_to_end_{label}"] = measure(predictor, scenes, validation.images)[
                    "end_to_end_accuracy"
                ]
            rows.append(("alignment", aligned, shipped_alignment, figures["alignment"]))
        report["detectors"][name] = figures
        for kind, fit, ship, row in rows:
            print(
                f"{name:<20}{kind:<12}{str(tuple(vars(fit).values())):<28}{str(tuple(vars(ship).values())):<28}"
                f"{row['end_to_end_before']:>11.1%}{row['end_to_end_fitted']:>11.1%}{row['end_to_end_shipped']:>12.1%}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
