"""The validation proxy for real photos (issue 30): every validation face as a camera and the face
detector would hand it to the classifier (training/capture.py), and each model's accuracy on it
against its accuracy on the clean faces, with what each effect costs alone and per-class recall.

    python bench/capture.py --data ../shared/data/fer2013.zip                         # the shipped model
    python bench/capture.py --data ../shared/data/fer2013.zip --weights runs/x/best.pt --backend onnx
    python bench/capture.py --data ../shared/data/fer2013.zip --json docs/runs/capture/fer-v3.json

The framing errors are the detector's own: on 300 photos built from validation faces
(bench/scenes.py, seed 0), the crop Predictor.find_faces hands the classifier (the default
detector, MTCNN, with its eye-level framing) against each face's true crop, for every face it finds,
as training/mtcnn_framing_errors_proxy.json holds them (`--measure-framing` measures them again on
--scenes scenes of --scene-seed instead; `--save-framing-errors PATH` writes what it measured and
stops: that is how both files in training/ were made). The proxy gives each validation face one of
those errors at random, with the other effects, all drawn from --seed and the face's index
(training.capture.proxy_crops): the same crops for every model, every run, and `fer export`'s card.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from faces import decode, match  # bench/faces.py, beside this script
from scenes import build_scenes

from fer.datasets import VALIDATION, load_splits, select_split
from fer.device import describe_device
from fer.labels import EMOTIONS
from fer.metrics import compute_metrics
from fer.options import BACKENDS, TTA_MODES
from fer.predictor import Predictor
from training.capture import (
    EFFECTS,
    PROXY_FRAMING_ERRORS_FILE,
    Capture,
    FramingError,
    load_framing_errors,
    proxy_crops,
    save_framing_errors,
)

CONDITIONS = ("clean", *EFFECTS, "proxy")  # the proxy: every effect at once


def detector_framing_errors(predictor: Predictor, scenes: list) -> list[FramingError]:
    """The detector's crop against the true crop, for every face it finds in the scenes."""
    errors = []
    for scene in scenes:
        truths = [face.box for face in scene.faces]
        boxes = predictor.find_faces(decode(scene), face_crop_fallback=False).boxes
        errors += [FramingError.between(truths[t], boxes[b]) for t, b in match(truths, boxes)[0].items()]
    return errors


def measure_model(predictor: Predictor, images: np.ndarray, labels: np.ndarray, crops: dict) -> dict:
    """Accuracy per condition; recall per class and the confusion matrix, clean and on the proxy."""
    report, started = {"accuracy": {}}, time.perf_counter()
    for condition in CONDITIONS:
        if condition == "clean":
            probabilities = predictor.predict_pixels(images)
        else:
            probabilities = predictor.predict_faces(crops[condition])
        metrics = compute_metrics(labels, probabilities.argmax(1))
        report["accuracy"][condition] = metrics["accuracy"]
        if condition in ("clean", "proxy"):
            report[condition] = {
                "recall": {emotion: metrics["per_class"][emotion]["recall"] for emotion in EMOTIONS},
                "macro_f1": metrics["macro_f1"],
                "confusion_matrix": metrics["confusion_matrix"],
            }
    report["drop"] = report["accuracy"]["clean"] - report["accuracy"]["proxy"]
    report["seconds"] = time.perf_counter() - started
    return report


def print_model(name: str, report: dict) -> None:
    accuracy = report["accuracy"]
    print(f"\n{name}: clean {accuracy['clean']:.2%}, proxy {accuracy['proxy']:.2%} (drop {report['drop']:.2%})")
    print("  each effect alone: " + ", ".join(f"{effect} {accuracy[effect]:.2%}" for effect in EFFECTS))
    print(f"  {'recall':<8}" + "".join(f"{emotion:>10}" for emotion in EMOTIONS))
    for condition in ("clean", "proxy"):
        recall = report[condition]["recall"]
        print(f"  {condition:<8}" + "".join(f"{recall[emotion]:>10.1%}" for emotion in EMOTIONS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="FER2013 (zip, folder or csv): its validation split")
    parser.add_argument("--weights", nargs="+", default=[None], help="models to measure (default: the shipped one)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS)
    parser.add_argument("--tta", choices=TTA_MODES, help="default: each model card's")
    parser.add_argument(
        "--measure-framing", action="store_true", help="measure the detector's framing errors on scenes, not the file's"
    )
    parser.add_argument("--scenes", type=int, default=300, help="photos to measure framing errors on")
    parser.add_argument("--scene-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="the proxy's draws")
    parser.add_argument("--limit", type=int, help="only the first N validation faces (for a quick look)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    parser.add_argument(
        "--save-framing-errors", metavar="PATH",
        help="only measure the detector's framing errors, write them here (the trainer's --capture reads them)",
    )  # fmt: skip
    args = parser.parse_args()

    validation = select_split(load_splits(args.data), VALIDATION, args.data)
    images, labels = validation.images[: args.limit], validation.labels[: args.limit]
    source = f"{PROXY_FRAMING_ERRORS_FILE.name} (300 scenes, seed 0)"
    if args.measure_framing or args.save_framing_errors:
        scenes = build_scenes(validation.images, validation.labels, args.scenes, args.scene_seed)
        errors = detector_framing_errors(Predictor.load(args.weights[0], backend=args.backend), scenes)
        if not errors:
            raise SystemExit(f"the detector found none of the faces in {len(scenes)} scenes: no framing errors to draw")
        source = f"the default detector on {len(scenes)} scenes, seed {args.scene_seed}"
        if args.save_framing_errors:
            save_framing_errors(errors, args.save_framing_errors, f"bench/capture.py: {source}")
            print(f"{len(errors)} framing errors written to {args.save_framing_errors}")
            return
    else:
        errors = list(load_framing_errors(PROXY_FRAMING_ERRORS_FILE))
    table = np.array([(e.dx, e.dy, e.log_scale) for e in errors])
    (dx, dy, log_scale), spread = np.median(table, 0), np.percentile(np.abs(table - np.median(table, 0)), 90, 0)
    print(f"{len(images)} validation faces; {describe_device('cpu')}")
    print(
        f"framing errors: {len(errors)} faces, from {source}; median offset ({dx:+.3f}, {dy:+.3f}) sides, "
        f"side x{np.exp(log_scale):.3f}; 90% within +-{spread[0]:.3f}, +-{spread[1]:.3f} sides and "
        f"x{np.exp(spread[2]):.3f}"
    )
    started = time.perf_counter()
    conditions = {effect: (effect,) for effect in EFFECTS} | {"proxy": EFFECTS}
    crops = proxy_crops(images, conditions, Capture(framing_errors=tuple(errors)), args.seed)
    print(f"crops for {len(conditions)} conditions made in {time.perf_counter() - started:.0f} s")

    report = {
        "faces": len(images), "seed": args.seed, "framing_errors_from": source,
        "machine": describe_device("cpu"), "framing_errors": len(errors),
        "framing_error_median": {"dx": dx, "dy": dy, "side": float(np.exp(log_scale))}, "models": {},
    }  # fmt: skip
    for weights in args.weights:
        predictor = Predictor.load(weights, backend=args.backend, tta=args.tta)
        name = f"{weights or predictor.card.name} ({predictor.backend} {predictor.precision}, tta {predictor.tta})"
        report["models"][name] = measure_model(predictor, images, labels, crops)
        print_model(name, report["models"][name])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
