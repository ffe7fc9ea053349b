"""Training-step throughput of each architecture under each AMP mode (forward, backward, SGD step).

    python bench/train_step.py --device cpu --archs vgg_slim vgg --batch-size 128

Prints images/s as the median of --runs timed steps after --warmup untimed ones, with the machine.
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from fer.device import describe_device, resolve_device
from fer.models import ARCHITECTURES, build_model
from training.precision import autocast_context


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--archs", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--amp", nargs="+", default=["off", "bf16"], choices=["off", "bf16", "fp16"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", metavar="PATH", help="also write the table to this JSON file")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"machine: {describe_device(device)}; torch {torch.__version__}; batch {args.batch_size}")
    print(f"images/s: median of {args.runs} steps after {args.warmup} warm-up steps")
    print(f"{'architecture':<14}{'amp':<6}{'images/s':>10}")
    table = {name: {} for name in args.archs}  # architecture -> amp -> images/s
    for name in args.archs:
        for amp in args.amp:
            torch.manual_seed(0)
            model = build_model(name).to(device, memory_format=torch.channels_last).train()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            pixels = (torch.rand(args.batch_size, 1, 48, 48, device=device) * 255).contiguous(
                memory_format=torch.channels_last
            )
            labels = torch.randint(0, 7, (args.batch_size,), device=device)
            for _ in range(args.warmup):
                step_seconds(model, optimizer, pixels, labels, amp, device)
            seconds = statistics.median(
                step_seconds(model, optimizer, pixels, labels, amp, device) for _ in range(args.runs)
            )
            table[name][amp] = args.batch_size / seconds
            print(f"{name:<14}{amp:<6}{table[name][amp]:>10.0f}")
    if args.json:
        report = {"machine": describe_device(device), "batch_size": args.batch_size, "images_per_second": table}
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
