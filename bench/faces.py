"""Face detection end to end on photos built from validation faces (bench/scenes.py): how many faces
each detector finds, how many false faces it reports, how often the classifier is then right, and
how many photos a second it prepares (issue 11).

    python bench/faces.py --data ../shared/data/fer2013.zip                  # 300 scenes, seed 0
    python bench/faces.py --data ../shared/data/fer2013.zip --detectors haar haar-equalized --json out.json
    python bench/faces.py --data ../shared/data/fer2013.zip --detectors mtcnn --without lighting jpeg
    python bench/faces.py --data ../shared/data/fer2013.zip --detectors mtcnn --edges soft
    python bench/faces.py --data ../shared/data/fer2013.zip --detectors mtcnn haar --alone   # and the ceiling

Per detector, over the same scenes:
- found: truth faces matched by a detected box with IoU >= 0.3 (each box matches one face at most);
- false faces per 100 photos: detected boxes that match no face;
- end to end: truth faces both found and classified right, over all truth faces;
- bare crops: the classifier on the same faces as 48x48 crops, the ceiling end to end can reach;
- found: photo / found: bare: the classifier on the faces found, as cut from the photo and as bare
  crops; their difference is what the photo itself costs (lighting, JPEG, resampling, framing);
- photos/s: decoding and Predictor.find_faces, one thread, median of --runs passes over the first
  --speed-scenes scenes after one warm-up pass;
- with --face-crops N, the first N validation crops given alone as 48x48 images: the share the
  detector finds a face in, the share answered with the whole-image fallback, and right answers; and
  the faces that fallback adds to the scenes;
- with --alone, found alone: the faces the detector finds each by itself, at its size in the scene,
  upright, on a plain background, with no lighting or JPEG: the ceiling of its found rate on these
  faces; and of those: how many of these it finds in the photos.
The classifier is the shipped model with its default TTA (the default configuration) unless --weights
and --tta say otherwise. Boxes are those
Predictor.find_faces reports: framed as FER2013 frames faces, and for MTCNN those of its eye-level
crops (bench/framing.py fits both).
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from scenes import EDGES, EFFECTS, Scene, build_scenes  # bench/scenes.py, beside this script

from fer.datasets import VALIDATION, load_splits, select_split
from fer.detection.base import box_iou
from fer.detection.blazeface import BlazeFaceDetector
from fer.detection.haar import HaarFaceDetector
from fer.detection.mtcnn import MtcnnFaceDetector
from fer.detection.yunet import YuNetFaceDetector
from fer.device import describe_device
from fer.options import TTA_MODES
from fer.predictor import Predictor

MATCH_IOU = 0.3
DETECTORS = {
    "mtcnn": MtcnnFaceDetector,
    "mtcnn-paper-thresholds": lambda: MtcnnFaceDetector(thresholds=(0.6, 0.7, 0.7)),
    "yunet": YuNetFaceDetector,
    **{f"yunet-t{round(t * 100)}": (lambda t=t: YuNetFaceDetector(score_threshold=t)) for t in (0.5, 0.7, 0.8)},
    "haar-equalized": lambda: HaarFaceDetector(equalize=True),
    "haar": lambda: HaarFaceDetector(equalize=False),
    **{
        f"blazeface-{side}-t{round(threshold * 100)}": (
            lambda side=side, threshold=threshold: BlazeFaceDetector(input_side=side, score_threshold=threshold)
        )
        for side in (192, 256, 320, 384)
        for threshold in (0.5, 0.6)
    },
}


def decode(scene: Scene) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(scene.encoded, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def match(truths: list, boxes: list) -> tuple[dict[int, int], int]:
    """Greedy matching by IoU: {truth index: box index}, and the number of boxes left unmatched."""
    pairs = sorted(
        ((box_iou(truth, box), t, b) for t, truth in enumerate(truths) for b, box in enumerate(boxes)), reverse=True
    )
    matched, used = {}, set()
    for overlap, t, b in pairs:
        if overlap < MATCH_IOU:
            break
        if t not in matched and b not in used:
            matched[t] = b
            used.add(b)
    return matched, len(boxes) - len(used)


def measure(predictor: Predictor, scenes: list[Scene], faces: np.ndarray, alone: list[bool] | None = None) -> dict:
    """The figures above; with `alone` (per truth face in scene order: did the detector find it alone,
    see `found_alone`), also how many of the faces it can find at all it finds in the photos."""
    truth_count = right = false_faces = 0
    found_indices, found_labels = [], []  # the found faces, to classify their bare crops too
    found_flags = []  # per truth face, in scene order
    for scene in scenes:
        boxes, crops, _ = predictor.find_faces(decode(scene), face_crop_fallback=False)
        truths = [face.box for face in scene.faces]
        matched, unmatched = match(truths, boxes)
        false_faces += unmatched
        truth_count += len(truths)
        found_flags += [t in matched for t in range(len(truths))]
        if matched:
            probabilities = predictor.predict_pixels(crops[list(matched.values())])
            labels = [scene.faces[t].label for t in matched]
            right += int((probabilities.argmax(1) == np.array(labels)).sum())
            found_indices += [scene.faces[t].index for t in matched]
            found_labels += labels
    found = len(found_indices)
    bare_right = (
        (predictor.predict_pixels(faces[found_indices]).argmax(1) == np.array(found_labels)).sum() if found else 0
    )
    figures = {
        "faces": truth_count,
        "found": found / truth_count,
        "false_faces_per_100_photos": 100 * false_faces / len(scenes),
        "end_to_end_accuracy": right / truth_count,
        "accuracy_of_found": right / max(found, 1),
        # The same found faces as bare 48x48 crops: what the photo itself (resampling, turn, lighting,
        # JPEG, framing) costs the classifier is this minus accuracy_of_found.
        "bare_accuracy_of_found": float(bare_right) / max(found, 1),
    }
    if alone is not None:
        findable = sum(alone)
        figures["found_alone"] = findable / truth_count
        figures["found_of_found_alone"] = sum(a and f for a, f in zip(alone, found_flags)) / max(findable, 1)
    return figures


def alone_photo(face: np.ndarray, side: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A face by itself: scaled to `side` as in its scene, upright, on a plain background of its own
    mean grey, half its side (24 px at least) all round; as RGB, with its box."""
    margin = max(side // 2, 24)
    photo = np.full((side + 2 * margin, side + 2 * margin), round(float(face.mean())), np.uint8)
    photo[margin : margin + side, margin : margin + side] = cv2.resize(
        face, (side, side), interpolation=cv2.INTER_LINEAR
    )
    return cv2.cvtColor(photo, cv2.COLOR_GRAY2RGB), (margin, margin, side, side)


def found_alone(predictor: Predictor, scenes: list[Scene], faces: np.ndarray) -> list[bool]:
    """Per truth face, in scene order: does the detector find it with nothing else in the picture, no
    turn, light or JPEG? What it cannot find there (FER2013 holds profiles, hands over faces, crops
    that cut most of the face away), no photo will make it find: the ceiling of its found rate."""
    flags = []
    for scene in scenes:
        for face in scene.faces:
            photo, box = alone_photo(faces[face.index], face.box[2])
            boxes, _, _ = predictor.find_faces(photo, face_crop_fallback=False)
            flags.append(any(box_iou(box, found) >= MATCH_IOU for found in boxes))
    return flags


def bare_crop_accuracy(predictor: Predictor, scenes: list[Scene], faces: np.ndarray) -> float:
    """The classifier on the scenes' faces as 48x48 crops: the same for every detector, so measured once."""
    indices = [face.index for scene in scenes for face in scene.faces]
    labels = np.array([face.label for scene in scenes for face in scene.faces])
    return float((predictor.predict_pixels(faces[indices]).argmax(1) == labels).mean())


def face_crops(predictor: Predictor, images: np.ndarray, labels: np.ndarray, scenes: list[Scene]) -> dict:
    """FER2013's own crops given as images, each alone (48x48, as a user's face crop): how many the
    detector finds a face in, how many get an answer with the whole-image fallback (FoundFaces), and
    how often the answer is right; and the faces the fallback adds to the scenes (it must add none)."""
    found = answered = right = 0
    for image, label in zip(images, labels):
        detected = predictor.find_faces(image, face_crop_fallback=False)
        with_fallback = detected if detected.boxes else predictor.find_faces(image)
        found += bool(detected.boxes)
        answered += bool(with_fallback.boxes)
        if with_fallback.boxes:
            right += int(predictor.predict_pixels(with_fallback.pixels[:1]).argmax()) == label
    added = 0
    for scene in scenes:
        photo = decode(scene)
        added += len(predictor.find_faces(photo).boxes) - len(
            predictor.find_faces(photo, face_crop_fallback=False).boxes
        )
    return {
        "crops": len(images), "found_in_crops": found / len(images), "answered_crops": answered / len(images),
        "right_of_crops": right / len(images), "faces_added_per_100_photos": 100 * added / len(scenes),
    }  # fmt: skip


def photos_per_second(predictor: Predictor, scenes: list[Scene], runs: int) -> float:
    def one_pass() -> float:
        started = time.perf_counter()
        for scene in scenes:
            predictor.find_faces(decode(scene), face_crop_fallback=False)
        return time.perf_counter() - started

    one_pass()
    return len(scenes) / statistics.median(one_pass() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="FER2013 (zip, folder or csv): its validation split")
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=list(DETECTORS))
    parser.add_argument("--speed-scenes", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--without", nargs="+", default=[], choices=EFFECTS, help="build the scenes without these effects"
    )
    parser.add_argument(
        "--edges", default="hard", choices=EDGES, help="paste faces with hard square edges or fade them in"
    )
    parser.add_argument("--weights", help="the classifier: weights or a checkpoint (default: the shipped model)")
    parser.add_argument("--tta", choices=TTA_MODES, help="default: the model card's")
    parser.add_argument(
        "--alone", action="store_true", help="also find each face alone on a plain background: the ceiling"
    )
    parser.add_argument(
        "--face-crops", type=int, default=0, metavar="N",
        help="also give the first N validation crops alone, as face crops: found, and answered by the fallback",
    )  # fmt: skip
    parser.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    args = parser.parse_args()

    def load(detector=None) -> Predictor:
        return Predictor.load(args.weights, tta=args.tta, detector=detector)

    validation = select_split(load_splits(args.data), VALIDATION, args.data)
    scenes = build_scenes(
        validation.images, validation.labels, args.scenes, args.seed, frozenset(args.without), args.edges
    )
    classifier = load()
    bare = bare_crop_accuracy(classifier, scenes, validation.images)
    report = {
        "scenes": len(scenes), "seed": args.seed, "without": args.without, "edges": args.edges,
        "machine": describe_device("cpu"),
        "weights": args.weights, "detectors": {},
    }  # fmt: skip
    left_out = f", without {' '.join(args.without)}" if args.without else ""
    left_out += ", soft edges" if args.edges == "soft" else ""
    faces = sum(len(scene.faces) for scene in scenes)
    print(f"{len(scenes)} scenes (seed {args.seed}{left_out}), {faces} faces; {report['machine']}")
    print(f"classifier: {args.weights or 'the shipped model'}, TTA {classifier.tta}")
    print(
        f"{'detector':<20}{'found':>8}{'false/100':>11}{'end to end':>12}{'bare crops':>12}"
        f"{'found: photo':>14}{'found: bare':>13}{'photos/s':>10}"
        + (f"{'found alone':>13}{'of those':>11}" if args.alone else "")
    )
    for name in args.detectors:
        predictor = load(DETECTORS[name]())
        alone = found_alone(predictor, scenes, validation.images) if args.alone else None
        figures = measure(predictor, scenes, validation.images, alone) | {"bare_crop_accuracy": bare}
        figures["photos_per_second"] = photos_per_second(predictor, scenes[: args.speed_scenes], args.runs)
        figures["tta"] = predictor.tta
        if args.face_crops:
            crops = slice(0, args.face_crops)
            figures["face_crops"] = face_crops(predictor, validation.images[crops], validation.labels[crops], scenes)
        report["detectors"][name] = figures
        print(
            f"{name:<20}{figures['found']:>8.1%}{figures['false_faces_per_100_photos']:>11.1f}"
            f"{figures['end_to_end_accuracy']:>12.1%}{figures['bare_crop_accuracy']:>12.1%}"
            f"{figures['accuracy_of_found']:>14.1%}{figures['bare_accuracy_of_found']:>13.1%}"
            f"{figures['photos_per_second']:>10.1f}"
            + (f"{figures['found_alone']:>13.1%}{figures['found_of_found_alone']:>11.1%}" if args.alone else "")
        )
        if args.face_crops:
            crops = figures["face_crops"]
            print(
                f"{'':<20}{crops['crops']} crops alone: found {crops['found_in_crops']:.1%}, answered with the "
                f"fallback {crops['answered_crops']:.1%}, right {crops['right_of_crops']:.1%}; faces the fallback "
                f"adds to the scenes: {crops['faces_added_per_100_photos']:.1f} per 100 photos"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
