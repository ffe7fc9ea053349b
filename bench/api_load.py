"""Load test of a running fer API: requests/s and latency percentiles at several concurrency levels.

    fer serve --port 8000 &                       # the server under test, in another shell
    python bench/api_load.py --url http://127.0.0.1:8000 --concurrency 1 4 16 64

Three workloads: (a) 48x48 face crops with detect=false (the model and the batching alone),
(b) 640x480 photos with one face each (decode, detection and the model) and (c) 16 crops per
/v1/predict/batch request (fewer, larger requests: face crops/s past what one request per crop
allows). Each level runs --warmup untimed requests, then --runs timed rounds of --requests requests
(at least 5 per connection); requests/s is the median round, latency percentiles pool every timed
request. Then the in-process Predictor's faces/s on the same
machine, for comparison: what the HTTP layer and batching cost.
"""

import argparse
import asyncio
import io
import json
import statistics
import time

import httpx
import numpy as np
from PIL import Image

from fer.device import describe_device
from fer.predictor import Predictor


def encode(array: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format, quality=90)
    return buffer.getvalue()


def face_crops(count: int) -> list[bytes]:
    """Distinct 48x48 grayscale crops cut from a real face photograph (PNG, a few KB each)."""
    from skimage import data

    face = np.asarray(Image.fromarray(data.astronaut()).convert("L"))[40:200, 150:310]
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(count):
        x, y = rng.integers(0, 40, size=2)
        crop = Image.fromarray(face[y : y + 120, x : x + 120]).resize((48, 48))
        crops.append(encode(np.asarray(crop), "PNG"))
    return crops


def photos(count: int) -> list[bytes]:
    """640x480 JPEG photos, each with the astronaut's face at a different place and size."""
    from skimage import data

    astronaut = Image.fromarray(data.astronaut())
    rng = np.random.default_rng(1)
    result = []
    for _ in range(count):
        side = int(rng.integers(280, 460))
        canvas = Image.new("RGB", (640, 480), tuple(int(v) for v in rng.integers(0, 255, size=3)))
        canvas.paste(
            astronaut.resize((side, side)), (int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side)))
        )
        result.append(encode(np.asarray(canvas), "JPEG"))
    return result


def multipart_request(host: str, path: str, payloads: list[bytes], field: str, headers: dict[str, str]) -> bytes:
    """A complete HTTP/1.1 POST with each payload as a multipart part named `field`, built once and replayed."""
    boundary = "fer-bench-boundary"
    body = (
        b"".join(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="image"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + payload
            + b"\r\n"
            for payload in payloads
        )
        + f"--{boundary}--\r\n".encode()
    )
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        f"Content-Type: multipart/form-data; boundary={boundary}",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length framed, as uvicorn sends JSON); return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return status


async def run_round(url: str, requests: list[bytes], count: int, concurrency: int):
    """`count` requests over `concurrency` keep-alive connections; returns (seconds, latencies, statuses).

    A minimal HTTP/1.1 client on asyncio streams replaying prebuilt requests: a full client library
    costs more CPU per request than the server does, and on a small machine the load generator would
    measure itself (httpx at 64 connections fed the server 2 faces per batch instead of dozens)."""
    host, port = httpx.URL(url).host, httpx.URL(url).port or 80
    latencies, statuses = [], []
    counter = iter(range(count))

    async def connection():
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for index in counter:
                started = time.perf_counter()
                writer.write(requests[index % len(requests)])
                statuses.append(await read_response(reader))
                latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, statuses


async def bench_workload(url, name, path, payloads, args, per_request: int = 1, field: str = "file") -> dict:
    """Each level's figures, printed and returned ({concurrency: {...}}); `per_request` images go in
    each request (the /v1/predict/batch workload), so images/s = req/s x per_request."""
    print(f"\n{name}")
    print(f"{'concurrency':>11} {'req/s':>8} {'images/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    host = httpx.URL(url).netloc.decode()
    groups = [payloads[i : i + per_request] for i in range(0, len(payloads) - per_request + 1, per_request)]
    requests = [multipart_request(host, path, group, field, args.headers) for group in groups]
    figures = {}
    for concurrency in args.concurrency:
        count = max(args.requests, 5 * concurrency)  # every connection stays busy for most of the round
        await run_round(url, requests, max(args.warmup, concurrency), concurrency)
        rates, latencies, errors = [], [], 0
        for _ in range(args.runs):
            seconds, round_latencies, statuses = await run_round(url, requests, count, concurrency)
            rates.append(count / seconds)
            latencies += round_latencies
            errors += sum(status != 200 for status in statuses)
        p50, p95, p99 = (np.percentile(latencies, q) * 1000 for q in (50, 95, 99))
        rate = statistics.median(rates)
        print(
            f"{concurrency:>11} {rate:>8.1f} {rate * per_request:>9.0f} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f} {errors:>7}"
        )
        figures[concurrency] = {
            "requests_per_second": rate,
            "images_per_second": rate * per_request,
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "errors": errors,
        }
    return figures


def bench_predictor(weights: str | None, tta: str, device: str, runs: int) -> dict:
    predictor = Predictor.load(weights, device=device, tta=tta)
    pixels = np.random.default_rng(0).integers(0, 256, size=(256, 48, 48), dtype=np.uint8)
    print(f"\nin-process Predictor.predict_pixels, tta {tta}, on {describe_device(predictor.device)}")
    print(f"{'batch':>6} {'faces/s':>9}")
    figures = {}
    for batch in (1, 16, 64, 256):
        predictor.batch_size = batch
        predictor.predict_pixels(pixels[:batch])  # warm-up
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            predictor.predict_pixels(pixels[:batch])
            times.append(time.perf_counter() - started)
        figures[batch] = batch / statistics.median(times)
        print(f"{batch:>6} {figures[batch]:>9.0f}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--requests", type=int, default=200, help="requests per timed round")
    parser.add_argument("--runs", type=int, default=3, help="timed rounds per level (median req/s)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--tta", help="query tta for the requests; default: the server's")
    parser.add_argument("--api-key")
    parser.add_argument("--predictor-device", default="cpu", help="device for the in-process comparison")
    parser.add_argument("--predictor-weights", help="weights for the in-process comparison (default: shipped)")
    parser.add_argument("--skip-predictor", action="store_true")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS), help="default: all")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to this JSON file")
    args = parser.parse_args()
    args.headers = {"X-API-Key": args.api_key} if args.api_key else {}

    card = httpx.get(f"{args.url}/v1/model", headers=args.headers, timeout=30).json()
    tta = args.tta or card["default_tta"]
    query = f"tta={tta}"
    print(f"server {args.url}: model {card['id']} on {card['device']} ({card['precision']}), tta {tta}")
    print(f"{args.runs} rounds of {args.requests} requests per level after {args.warmup} warm-up requests")
    report = {"server": {key: card[key] for key in ("id", "device", "precision")}, "tta": tta}
    for name in args.workloads:
        title, path, make_payloads, per_request, field = WORKLOADS[name]
        report[name] = asyncio.run(
            bench_workload(args.url, title, f"{path}&{query}", make_payloads(), args, per_request, field)
        )
    if not args.skip_predictor:
        report["predictor_faces_per_second"] = bench_predictor(
            args.predictor_weights, tta, args.predictor_device, args.runs + 2
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


# name: (title, path, payloads, images per request, multipart field)
WORKLOADS = {
    "crops": ("(a) 48x48 face crops, detect=false", "/v1/predict?detect=false", lambda: face_crops(64), 1, "file"),
    "photos": (
        "(b) 640x480 photos, one face each, detect=true",
        "/v1/predict?detect=true",
        lambda: photos(16),
        1,
        "file",
    ),
    "batch": (
        "(c) 16 face crops per /v1/predict/batch request, detect=false",
        "/v1/predict/batch?detect=false",
        lambda: face_crops(64),
        16,
        "files",
    ),
}


if __name__ == "__main__":
    main()
