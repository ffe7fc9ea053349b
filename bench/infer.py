"""Classification throughput: faces/s of the model on preprocessed 48x48 faces, per batch size and
backend (PyTorch eager through Predictor.predict_faces, torch.compile, and a bare ONNX Runtime session;
Predictor itself picks ONNX Runtime on a CPU when the weights have a matching .onnx).

    python bench/infer.py --device cpu --backends eager compile onnx
    python bench/infer.py --device cuda --weights weights/fer-baseline.safetensors

Each cell: the median of --runs timed calls after --warmup untimed ones, on the same random faces;
faces/s = batch / median seconds. No TTA unless --tta (ten-crop costs 10 forward passes per face).
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from fer.device import describe_device, resolve_device
from fer.predictor import Predictor
from fer.tta import TTA_MODES
from fer.weights import default_weights_path


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


def eager(predictor: Predictor, faces: np.ndarray, tta: str):
    return lambda: predictor.predict_faces(list(faces)) if tta == "none" else predictor.predict_pixels(faces, tta)


def onnx_session(weights: str | None, device: torch.device):
    import onnxruntime

    path = Path(weights or default_weights_path()).with_suffix(".onnx")
    if not path.is_file():
        raise SystemExit(f"no ONNX file next to the weights: {path} (export with `fer export`)")
    providers = ["CUDAExecutionProvider"] if device.type == "cuda" else []
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=providers + ["CPUExecutionProvider"])
    return session, path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="default: the shipped weights")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backends", nargs="+", default=["eager", "onnx"], choices=["eager", "compile", "onnx"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--tta", default="none", choices=TTA_MODES)
    parser.add_argument("--threads", type=int, help="torch and ONNX Runtime threads (default: torch's)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    predictor = Predictor.load(args.weights, device=args.device, tta=args.tta, backend="torch")
    print(f"model {predictor.card.get('name')} ({predictor.card.get('arch')}), tta {args.tta}")
    print(f"machine: {describe_device(device)}; torch {torch.__version__}; {predictor.dtype} on {device.type}")
    print(f"faces/s: median of {args.runs} calls after {args.warmup} warm-up calls")
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(max(args.batch_sizes), 48, 48), dtype=np.uint8)

    header = f"{'batch':>6}" + "".join(f"{name:>12}" for name in args.backends)
    print(header)
    compiled = session = None
    for batch in args.batch_sizes:
        row = f"{batch:>6}"
        chunk = faces[:batch]
        for backend in args.backends:
            if backend == "eager":
                predictor.batch_size = max(batch, 1)
                call = eager(predictor, chunk, args.tta)
            elif backend == "compile":
                if compiled is None:
                    compiled = Predictor(torch.compile(predictor.model), predictor.card, device, args.tta)
                call = eager(compiled, chunk, args.tta)
            else:
                if args.tta != "none":
                    raise SystemExit("the ONNX backend is measured without TTA (--tta none)")
                if session is None:
                    session, _ = onnx_session(args.weights, device)
                pixels = chunk[:, None].astype(np.float32)  # (B, 1, 48, 48), 0..255: the model normalizes
                call = lambda pixels=pixels, session=session: session.run(["logits"], {"pixels": pixels})  # noqa: E731
            row += f"{batch / seconds_per_call(call, args.warmup, args.runs, device):>12,.0f}"
        print(row)


if __name__ == "__main__":
    main()
