"""The `fer` command.

    fer predict photo.jpg photos/ clip.mp4 [--json] [--no-detect] [--annotate DIR]
    fer evaluate ../shared/data/fer2013.zip --split validation [--weights runs/train/best.pt] [--json] [--plot cm.png]
    fer export runs/train/best.pt --out weights/my-model [--data ../shared/data/fer2013.zip]
    fer download --dest data/ [--source dataset|competition]
    fer models
    fer webcam [--source 0|video.mp4|URL] [--api URL] [--headless] [--output out.mp4] [--log frames.jsonl]
    fer serve [--host 127.0.0.1] [--port 8000] [--weights PATH] [--device auto|cuda|cpu] [--workers N]

Mistakes a user can fix (a missing file, an unreadable image, a bad value) print one line and exit
with status 2; --debug shows the traceback instead.
"""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from fer import __version__
from fer.device import DEVICE_CHOICES
from fer.errors import FerError, OneLineArgumentParser
from fer.predictor import BACKENDS
from fer.tta import TTA_MODES

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    parser = OneLineArgumentParser(
        prog="fer", description="Facial expression recognition (FER2013, 7 emotions).", parents=[common]
    )
    parser.add_argument("--version", action="version", version=f"fer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    model = argparse.ArgumentParser(add_help=False)
    model.add_argument(
        "--weights", help="weights (.safetensors) or training checkpoint (.pt); default: shipped weights"
    )
    model.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    model.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation; default: the weights' best")
    model.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="CPU engine: auto runs the int8 variant when its card shows its accuracy holds, else ONNX Runtime "
        "when the weights have a matching .onnx, else PyTorch; torch, onnx and int8 force one engine",
    )

    predict = commands.add_parser("predict", parents=[common, model], help="emotions of the faces in images")
    predict.add_argument("images", nargs="+", metavar="PATH", help="images, folders (searched recursively), videos")
    predict.add_argument("--json", action="store_true", help="one JSON object per image, or per video frame")
    predict.add_argument("--annotate", metavar="DIR", help="write annotated copies (boxes, emotions, bars) here")
    predict.add_argument("--no-detect", action="store_true", help="treat each whole image as one face crop")

    evaluate = commands.add_parser(
        "evaluate", parents=[common, model], help="accuracy and confusion matrix on a dataset"
    )
    evaluate.add_argument(
        "data", metavar="DATA", help="Kaggle .zip or folder, fer2013.csv, or a folder of emotion folders"
    )
    evaluate.add_argument("--split", default="validation", choices=["validation", "test", "train"])
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--plot", metavar="FILE.png", help="write the confusion matrix as a PNG")

    export = commands.add_parser("export", parents=[common], help="checkpoint -> .safetensors, .json card, .onnx")
    export.add_argument("checkpoint", metavar="CHECKPOINT")
    export.add_argument("--out", required=True, metavar="PREFIX", help="for example weights/my-model")
    export.add_argument(
        "--data", help="measure validation accuracy for every TTA mode into the card, and write the int8 variant"
    )
    export.add_argument("--no-onnx", action="store_true")

    download = commands.add_parser("download", parents=[common], help="fetch FER2013 from Kaggle")
    download.add_argument("--dest", default="data", help="folder to download into (default: data)")
    download.add_argument("--source", default="dataset", choices=["dataset", "competition"])

    commands.add_parser("models", parents=[common], help="architectures with parameters and FLOPs per face")

    webcam = commands.add_parser(
        "webcam", parents=[common], help="live emotion overlay from a camera, a video file or a stream"
    )
    from fer.live.demo import add_arguments as add_webcam_arguments

    add_webcam_arguments(webcam)

    serve = commands.add_parser(
        "serve",
        parents=[common, model],
        help="start the REST API (other settings: FER_* variables, see the README)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="processes, each with its own model (default: 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Warnings only (skipped images, ignored caches): libraries such as onnxscript log chatty INFO lines.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    handler = {
        "predict": run_predict,
        "evaluate": run_evaluate,
        "export": run_export,
        "download": run_download,
        "models": run_models,
        "serve": run_serve,
        "webcam": run_webcam,
    }
    try:
        return handler[args.command](args)
    except FerError as error:
        if args.debug:
            raise
        print(f"fer: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `fer predict clip.mp4 --json | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _load_predictor(args):
    from fer.predictor import Predictor

    return Predictor.load(args.weights, device=args.device, tta=args.tta, backend=args.backend)


def run_predict(args) -> int:
    from fer.files import predict_paths

    def print_error(error: FerError) -> None:
        if args.debug:
            raise error
        print(f"fer: error: {error}", file=sys.stderr)

    predictor = _load_predictor(args)
    failed = predict_paths(predictor, args.images, not args.no_detect, args.json, args.annotate, print_error)
    return EXIT_USER_ERROR if failed else 0


def run_evaluate(args) -> int:
    from training.data import load_splits, select_split
    from training.evaluate import evaluate_predictor, format_report, plot_confusion_matrix

    predictor = _load_predictor(args)
    split = select_split(load_splits(args.data), args.split, args.data)
    report = evaluate_predictor(predictor, split.images, split.labels)
    if args.plot:
        plot_confusion_matrix(report, args.plot)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.data} ({args.split}), weights {args.weights or 'shipped default'}")
        print(format_report(report))
        if args.plot:
            print(f"confusion matrix written to {args.plot}")
    return 0


def run_export(args) -> int:
    from training.export import export_checkpoint

    card = export_checkpoint(args.checkpoint, args.out, data=args.data, onnx=not args.no_onnx)
    written = [f"{args.out}.safetensors", f"{args.out}.json"] + ([] if args.no_onnx else [f"{args.out}.onnx"])
    if "int8" in card:
        written.append(str(Path(args.out).with_name(card["int8"]["file"])))
    print(f"exported {card['arch']} (epoch {card['epoch']}) to {', '.join(written)}")
    int8 = card.get("int8", {}).get("metrics", {}).get("validation", {})
    for tta, metrics in card["metrics"]["validation"].items():
        if metrics.get("accuracy") is not None:
            line = f"  validation accuracy, tta {tta}: {metrics['accuracy']:.2%}"
            print(line + (f" (int8: {int8[tta]['accuracy']:.2%})" if tta in int8 else ""))
    return 0


def run_download(args) -> int:
    from training.download import download

    path = download(args.dest, args.source)
    print(f"ready: train with --data {path}")
    return 0


def run_models(args) -> int:
    from fer.models import ARCHITECTURES, describe_model

    print(f"{'architecture':<14}{'parameters':>12}{'MFLOPs/face':>13}")
    for name in ARCHITECTURES:
        summary = describe_model(name)
        print(f"{name:<14}{summary.parameters:>12,}{summary.flops_per_face / 1e6:>13,.0f}")
    return 0


def run_webcam(args) -> int:
    from fer.live.demo import run

    return run(args)


def run_serve(args) -> int:
    from api.serve import serve

    # --device defaults to "auto" for every command; only pass what the user chose to the app.
    device = None if args.device == "auto" else args.device
    backend = None if args.backend == "auto" else args.backend
    serve(args.host, args.port, args.weights, device, args.tta, args.workers, backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
