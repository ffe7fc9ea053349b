"""Classification throughput: faces/s of Predictor.predict_faces on 48x48 face crops, per batch size
and engine: PyTorch eager, torch.compile, ONNX Runtime float32 and the int8 variant (the engines of
`--backend torch|onnx|int8`; on a CPU `auto` picks int8 when the card shows its accuracy holds).

    python bench/infer.py --device cpu --backends eager compile onnx int8
    python bench/infer.py --device cuda --backends eager compile

Each cell: the median of --runs timed calls after --warmup untimed ones, on the same random faces;
faces/s = batch / median seconds. TTA: the model card's default (the default configuration; none for the
shipped model) unless --tta says otherwise (ten-crop costs 10 forward passes per face).
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch

from fer.device import describe_device, resolve_device
from fer.options import TTA_MODES
from fer.predictor import Predictor


def seconds_per_call(function, warmup: int, runs: int, device: torch.device) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize()  # the GPU works asynchronously: wait before reading the clock
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def classify(predictor: Predictor, faces: np.ndarray, tta: str):
    if tta == "none":
        crops = list(faces)
        return lambda: predictor.predict_faces(crops)
    return lambda: predictor.predict_pixels(faces, tta)


def load_engine(name: str, args) -> Predictor:
    if name == "compile":
        eager = Predictor.load(args.weights, device=args.device, tta=args.tta, backend="torch")
        engine = eager.engine
        engine.model = torch.compile(engine.model)
        return Predictor(engine, eager.card, eager.tta)
    backend = {"eager": "torch", "onnx": "onnx", "int8": "int8"}[name]
    return Predictor.load(args.weights, device=args.device, tta=args.tta, backend=backend)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="default: the shipped weights")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--backends", nargs="+", default=["eager", "onnx", "int8"], choices=["eager", "compile", "onnx", "int8"]
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--tta", choices=TTA_MODES, help="default: the model card's")
    parser.add_argument("--threads", type=int, help="torch and ONNX Runtime threads (default: torch's)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", metavar="PATH", help="also write the table to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    engines = {name: load_engine(name, args) for name in args.backends}
    first = next(iter(engines.values()))
    card, tta = first.card, first.tta
    print(f"model {card.name} ({card.arch}), tta {tta}" + ("" if args.tta else " (the card's default)"))
    print(f"machine: {describe_device(device)}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("engines: " + ", ".join(f"{name} = {p.backend} {p.precision}" for name, p in engines.items()))
    print(f"faces/s: median of {args.runs} calls after {args.warmup} warm-up calls")
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(max(args.batch_sizes), 48, 48), dtype=np.uint8)

    print(f"{'batch':>6}" + "".join(f"{name:>12}" for name in engines))
    table = {name: {} for name in engines}  # engine -> batch -> faces/s
    for batch in args.batch_sizes:
        row = f"{batch:>6}"
        for name, predictor in engines.items():
            predictor.batch_size = batch  # one forward pass per call
            call = classify(predictor, faces[:batch], tta)
            table[name][batch] = batch / seconds_per_call(call, args.warmup, args.runs, device)
            row += f"{table[name][batch]:>12,.0f}"
        print(row)
    if args.json:
        report = {
            "machine": describe_device(device),
            "torch": torch.__version__,
            "tta": tta,
            "precision": {name: p.precision for name, p in engines.items()},
            "faces_per_second": table,
        }
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
