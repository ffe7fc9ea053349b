"""Face detectors on the real photographs that scikit-image ships (no download): the two portraits
(the astronaut, Eileen Collins, smiling; the cameraman) and every other photo it ships that holds no
human face. Per detector: the portraits' faces found and the astronaut's emotion end to end, false
faces on the photos without faces, and photos/s over all of them (one thread, median of --runs
passes after a warm-up). A small set: it shows a detector that answers nonsense on real photos, not
a found rate to quote.

    python bench/real_photos.py
    python bench/real_photos.py --detectors mtcnn yunet --json out.json
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from skimage import data

from fer.device import describe_device
from fer.options import DETECTORS
from fer.predictor import Predictor

PORTRAITS = {"astronaut": 1, "camera": 1}  # faces in each
WITHOUT_FACES = ("chelsea", "coffee", "rocket", "eagle", "horse", "hubble_deep_field", "immunohistochemistry",
                 "coins", "moon", "page", "text", "clock", "brick", "grass", "gravel")  # fmt: skip


def photos(names) -> dict[str, np.ndarray]:
    found = {}
    for name in names:
        try:
            image = getattr(data, name)()
        except Exception:  # some need a download in this scikit-image; none is made
            continue
        found[name] = np.ascontiguousarray(image if image.dtype == np.uint8 else (image > 0) * np.uint8(255))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    portraits, faceless = photos(PORTRAITS), photos(WITHOUT_FACES)
    every = list(portraits.values()) + list(faceless.values())
    report = {"machine": describe_device("cpu"), "portraits": list(portraits), "without_faces": list(faceless)}
    print(f"{len(portraits)} portraits, {len(faceless)} photos without faces; {report['machine']}")
    print(f"{'detector':<12}{'portrait faces':>16}{'astronaut':>16}{'false faces':>13}{'photos/s':>10}")
    for name in args.detectors:
        predictor = Predictor.load(detector=name)

        def faces(image, predictor=predictor):
            return predictor.predict_image(image, face_crop_fallback=False)

        found = sum(min(len(faces(image)), PORTRAITS[key]) for key, image in portraits.items())
        astronaut = faces(portraits["astronaut"])
        emotion = f"{astronaut[0].emotion} {astronaut[0].score:.2f}" if astronaut else "-"
        false = sum(len(faces(image)) for image in faceless.values())
        false += sum(max(0, len(faces(image)) - PORTRAITS[key]) for key, image in portraits.items())

        def one_pass(predictor=predictor) -> float:
            started = time.perf_counter()
            for image in every:
                predictor.find_faces(image, face_crop_fallback=False)
            return time.perf_counter() - started

        one_pass()
        speed = len(every) / statistics.median(one_pass() for _ in range(args.runs))
        report[name] = {
            "portrait_faces_found": found,
            "astronaut": emotion,
            "false_faces": false,
            "photos_per_second": speed,
        }
        print(f"{name:<12}{f'{found} of {sum(PORTRAITS.values())}':>16}{emotion:>16}{false:>13}{speed:>10.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
