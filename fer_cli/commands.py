"""What each `fer` command does, given its parsed flags (see fer_cli.main for the flags).

Each command imports its own layer when it runs: `fer download` never pays for torch, `fer predict`
never for FastAPI or the ONNX exporter.
"""

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from fer.errors import EXIT_USER_ERROR, FerError


def _load_predictor(args: argparse.Namespace):  # -> fer.Predictor, imported here on purpose
    from fer.predictor import Predictor

    # `fer evaluate` classifies crops: no --detector, and no detector is created.
    detector = getattr(args, "detector", None)
    return Predictor.load(args.weights, device=args.device, tta=args.tta, backend=args.backend, detector=detector)


def run_predict(args: argparse.Namespace) -> int:
    from fer_cli.files import predict_paths

    def print_error(error: FerError) -> None:
        if args.debug:
            raise error
        print(f"fer: error: {error}", file=sys.stderr)

    predictor = _load_predictor(args)
    failed = predict_paths(predictor, args.images, not args.no_detect, args.json, args.annotate, print_error)
    return EXIT_USER_ERROR if failed else 0


def run_evaluate(args: argparse.Namespace) -> int:
    from fer.datasets import load_splits, select_split
    from fer.metrics import evaluate_predictor, format_report, plot_confusion_matrix

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


def run_export(args: argparse.Namespace) -> int:
    from training.export import export_checkpoint

    def report(step: str) -> None:  # to stderr: stdout keeps the summary below
        print(step, file=sys.stderr, flush=True)

    card = export_checkpoint(
        args.checkpoint, args.out, data=args.data, onnx=not args.no_onnx, report=report, default_tta=args.default_tta
    )
    written = [f"{args.out}.safetensors", f"{args.out}.json"] + ([] if args.no_onnx else [f"{args.out}.onnx"])
    if card.int8 is not None:
        written.append(str(Path(args.out).with_name(card.int8.file)))
    print(f"exported {card.arch} (epoch {card.epoch}) to {', '.join(written)}; default tta {card.default_tta}")
    int8 = card.int8.metrics if card.int8 is not None else None
    for tta, metrics in card.metrics.validation.items():
        if metrics.accuracy is not None:
            line = f"  validation accuracy, tta {tta}: {metrics.accuracy:.2%}"
            if int8 is not None and tta in int8.validation:
                line += f" (int8: {int8.validation[tta].accuracy:.2%})"
            if tta in card.metrics.capture_proxy:
                line += f"; capture proxy {card.metrics.capture_proxy[tta].accuracy:.2%}"
                if int8 is not None and tta in int8.capture_proxy:
                    line += f" (int8: {int8.capture_proxy[tta].accuracy:.2%})"
            print(line)
    return 0


def run_download(args: argparse.Namespace) -> int:
    from fer_cli.download import download

    path = download(args.dest, args.source)
    print(f"ready: train with --data {path}")
    return 0


def run_models(args: argparse.Namespace) -> int:
    from fer.models import ARCHITECTURES, describe_model

    print(f"{'architecture':<14}{'parameters':>12}{'MFLOPs/face':>13}")
    for name in ARCHITECTURES:
        summary = describe_model(name)
        print(f"{name:<14}{summary.parameters:>12,}{summary.flops_per_face / 1e6:>13,.0f}")
    from fer.cpu import cpu_info

    predictor = _load_predictor(args)
    accuracy = predictor.validation_metrics.validation.get(predictor.tta)
    shown = f", {accuracy.accuracy:.2%} on validation" if accuracy and accuracy.accuracy is not None else ""
    print(f"\n{predictor.card.name} ({predictor.card.arch}, tta {predictor.tta}{shown}) runs on {predictor.device} "
          f"with {predictor.backend} ({predictor.precision})")  # fmt: skip
    print(f"  why: {predictor.engine_reason}")
    print(f"  CPU: {cpu_info().describe()}")
    return 0


def run_webcam(args: argparse.Namespace) -> int:
    from fer_cli.live.demo import DemoSettings, run_demo

    return run_demo(DemoSettings(**{field.name: getattr(args, field.name) for field in fields(DemoSettings)}))


def run_serve(args: argparse.Namespace) -> int:
    from api.serve import serve

    # --device defaults to "auto" for every command; only pass what the user chose to the app.
    device = None if args.device == "auto" else args.device
    backend = None if args.backend == "auto" else args.backend
    serve(args.host, args.port, args.weights, device, args.tta, args.workers, backend, args.detector)
    return 0
