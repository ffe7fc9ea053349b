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

Only light modules are imported here (no torch, OpenCV or FastAPI): a command's own imports wait
until it runs, in fer_cli.commands.
"""

import argparse
import logging
import os
import sys
from collections.abc import Callable

from fer import __version__
from fer.errors import EXIT_USER_ERROR, FerError
from fer.options import BACKENDS, DEFAULT_DETECTOR, DETECTORS, DEVICE_CHOICES, TTA_MODES
from training.arguments import OneLineArgumentParser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    parser = OneLineArgumentParser(
        prog="fer", description="Facial expression recognition (FER2013, 7 emotions).", parents=[common]
    )
    parser.add_argument("--version", action="version", version=f"fer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    model = argparse.ArgumentParser(add_help=False)
    add_model_arguments(model, tta_default=None, tta_help="test-time augmentation; default: the weights' best")
    detector = argparse.ArgumentParser(add_help=False)  # for the commands that look for faces
    add_detector_argument(detector)

    predict = commands.add_parser("predict", parents=[common, model, detector], help="emotions of the faces in images")
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
    export.add_argument(
        "--default-tta",
        default="best",
        choices=["best", *TTA_MODES],
        help="the TTA the model runs when none is asked for: best (on validation, with --data; the default) or "
        "a mode, e.g. none where the speed floor rules the others out (docs/benchmarks.md)",
    )

    download = commands.add_parser("download", parents=[common], help="fetch FER2013 from Kaggle")
    download.add_argument("--dest", default="data", help="folder to download into (default: data)")
    download.add_argument("--source", default="dataset", choices=["dataset", "competition"])

    commands.add_parser(
        "models",
        parents=[common, model],
        help="architectures with parameters and FLOPs per face, and the engine the weights run with here, and why",
    )

    webcam = commands.add_parser(
        "webcam", parents=[common], help="live emotion overlay from a camera, a video file or a stream"
    )
    add_webcam_arguments(webcam)

    serve = commands.add_parser(
        "serve",
        parents=[common, model, detector],
        help="start the REST API (other settings: FER_* variables, see docs/api.md)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="processes, each with its own model (default: 1)")
    return parser


def add_model_arguments(parser: argparse.ArgumentParser, tta_default: str | None, tta_help: str) -> None:
    """The flags that choose a model and how it runs, the same for every command that runs one."""
    parser.add_argument(
        "--weights", help="weights (.safetensors) or training checkpoint (.pt); default: shipped weights"
    )
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    parser.add_argument("--tta", choices=TTA_MODES, default=tta_default, help=tta_help)
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="CPU engine: auto runs the int8 variant when its card shows its accuracy holds, else ONNX Runtime "
        "when the weights have a matching .onnx, else PyTorch; torch, onnx and int8 force one engine",
    )


def add_detector_argument(parser: argparse.ArgumentParser) -> None:
    """--detector, for the commands that look for faces (predict, serve, webcam; not evaluate)."""
    parser.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        choices=DETECTORS,
        help=f"face detector (default {DEFAULT_DETECTOR}): mtcnn finds the most faces, haar needs no model "
        "package, blazeface is the fastest",
    )


def add_webcam_arguments(parser: argparse.ArgumentParser) -> None:
    """`fer webcam` and scripts/webcam_demo.py: the fields of fer_cli.live.demo.DemoSettings."""
    parser.add_argument("--source", default="0", help="camera index (default 0), video file, or stream URL")
    parser.add_argument("--api", metavar="URL", help="send frames to a running `fer serve` instead")
    parser.add_argument("--api-key", help="the server's FER_API_KEY, if it has one")
    add_model_arguments(parser, tta_default="none", tta_help="in-process TTA (default none: live speed)")
    add_detector_argument(parser)
    parser.add_argument(
        "--smooth", type=float, default=0.6, metavar="ALPHA", help="weight of the past in [0, 1); 0: no smoothing"
    )
    parser.add_argument("--headless", action="store_true", help="no window")
    parser.add_argument("--output", metavar="FILE.mp4", help="write the annotated video")
    parser.add_argument("--log", metavar="FILE.jsonl", help="one JSON object per frame")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    parser.add_argument("--snapshot-dir", default=".", help="where `s` saves snapshots (default: here)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from fer_cli import commands  # after parsing: --help and flag mistakes never pay for torch

    handler = {
        "predict": commands.run_predict,
        "evaluate": commands.run_evaluate,
        "export": commands.run_export,
        "download": commands.run_download,
        "models": commands.run_models,
        "serve": commands.run_serve,
        "webcam": commands.run_webcam,
    }[args.command]
    return run_reporting_errors(handler, args, "fer")


def webcam_demo_main(argv: list[str] | None = None) -> int:
    """scripts/webcam_demo.py: `fer webcam` under its own name."""
    parser = OneLineArgumentParser(prog="webcam_demo", description="Live emotion overlay (same as `fer webcam`).")
    add_webcam_arguments(parser)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    from fer_cli import commands

    return run_reporting_errors(commands.run_webcam, args, "webcam_demo")


# Which extra of the fer-emotion distribution brings each module a command may need (pyproject.toml).
EXTRA_OF_MODULE = {
    **dict.fromkeys(
        ("fastapi", "starlette", "anyio", "uvicorn", "multipart", "pydantic_settings", "prometheus_client"), "serve"
    ),
    **dict.fromkeys(("torch", "safetensors", "onnx"), "gpu"),
    **dict.fromkeys(("onnxscript", "tqdm", "tensorboard", "matplotlib", "kaggle", "six"), "train"),
}


def missing_extra(error: ModuleNotFoundError) -> str | None:
    """The one-line advice for a module of an extra that is not installed; None for any other."""
    module = (error.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return f"this command needs {module}, which fer-emotion installs with its {extra!r} extra: " + (
        f"pip install 'fer-emotion[{extra}]'"
    )


def run_reporting_errors(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace, prog: str) -> int:
    """Run a command; a mistake the user can fix is one line on stderr and exit status 2."""
    # Warnings only (skipped images, ignored caches): libraries such as onnxscript log chatty INFO lines.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return handler(args)
    except FerError as error:
        if args.debug:
            raise
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ModuleNotFoundError as error:
        advice = missing_extra(error)
        if advice is None or args.debug:
            raise
        print(f"{prog}: error: {advice}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `fer predict clip.mp4 --json | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
