"""Training-step throughput (forward, backward, SGD step) per architecture, AMP mode, input size,
batch size and memory format: what issue 30's "compute first" asks to measure before a leg.

    python bench/train_step.py --device cpu --archs vgg_slim vgg --batch-sizes 64 128
    python bench/train_step.py --device cpu --archs vgg_slim resnet_slim --amp bf16 --sizes 40 44 48 \\
        --memory-formats channels_last contiguous

Prints images/s as the median of --runs timed steps after --warmup untimed ones, with the machine.
The trainer runs 48-pixel faces in channels_last at batch 64; other sizes answer what smaller
training crops would save (the VGG models' first fully connected layer is built for the size asked,
as a 40-pixel-crop recipe would; the ResNets pool globally and take any size).
"""

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from fer.device import describe_device, resolve_device
from fer.models import ARCHITECTURES, VGGNet
from fer.preprocess import INPUT_SIZE
from training.precision import autocast_context

MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


@dataclass(frozen=True)
class Setting:
    arch: str
    amp: str
    input_size: int
    batch_size: int
    memory_format: str


def build_for_size(arch: str, input_size: int) -> torch.nn.Module:
    factory = ARCHITECTURES[arch]
    if factory.func is VGGNet:  # its classifier's width depends on the size; global pooling does not
        return factory(input_size=input_size)
    return factory()


def step_seconds(model, optimizer, pixels, labels, amp: str, device: torch.device) -> float:
    context = autocast_context(amp, device)  # the trainer's own, so the bench measures what it runs
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with context:
        loss = F.cross_entropy(model(pixels).float(), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()  # wait for the GPU before reading the clock
    return time.perf_counter() - start


def images_per_second(setting: Setting, device: torch.device, warmup: int, runs: int) -> float:
    torch.manual_seed(0)
    memory_format = MEMORY_FORMATS[setting.memory_format]
    model = build_for_size(setting.arch, setting.input_size).to(device, memory_format=memory_format).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    side = setting.input_size
    pixels = (torch.rand(setting.batch_size, 1, side, side, device=device) * 255).contiguous(
        memory_format=memory_format
    )
    labels = torch.randint(0, 7, (setting.batch_size,), device=device)
    for _ in range(warmup):
        step_seconds(model, optimizer, pixels, labels, setting.amp, device)
    seconds = statistics.median(
        step_seconds(model, optimizer, pixels, labels, setting.amp, device) for _ in range(runs)
    )
    return setting.batch_size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--archs", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--amp", nargs="+", default=["off", "bf16"], choices=["off", "bf16", "fp16"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[INPUT_SIZE], help="input sides in pixels")
    parser.add_argument("--batch-sizes", "--batch-size", nargs="+", type=int, default=[128])
    parser.add_argument("--memory-formats", nargs="+", default=["channels_last"], choices=list(MEMORY_FORMATS))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", metavar="PATH", help="also write the table to this JSON file")
    args = parser.parse_args()
    if min(args.sizes) < 16 or min(args.batch_sizes) < 1:
        parser.error("--sizes must be at least 16 pixels (four 2x poolings) and --batch-sizes at least 1")
    device = resolve_device(args.device)
    machine = describe_device(device)
    print(f"machine: {machine}; torch {torch.__version__}")
    print(f"images/s: median of {args.runs} steps after {args.warmup} warm-up steps")
    print(f"{'architecture':<14}{'amp':<6}{'size':>5}{'batch':>7}  {'memory format':<15}{'images/s':>10}")
    rows = []
    for arch in args.archs:
        for amp in args.amp:
            for size in args.sizes:
                for batch in args.batch_sizes:
                    for memory_format in args.memory_formats:
                        setting = Setting(arch, amp, size, batch, memory_format)
                        speed = images_per_second(setting, device, args.warmup, args.runs)
                        rows.append({**asdict(setting), "images_per_second": round(speed, 1)})
                        print(f"{arch:<14}{amp:<6}{size:>5}{batch:>7}  {memory_format:<15}{speed:>10.0f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": machine, "torch": torch.__version__, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
