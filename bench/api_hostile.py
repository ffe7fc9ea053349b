"""The API under hostile and heavy clients (issue 15): peak memory under the worst allowed requests,
and a soak of mixed hostile and normal load. Starts its own `fer serve` on loopback (default settings,
shipped model) so that it can read the server's memory from /proc.

    python bench/api_hostile.py memory                    # 3 rounds of 128 worst-case requests at once
    python bench/api_hostile.py soak --minutes 30         # 2x capacity with slow clients, disconnects, bombs
    python bench/api_hostile.py beside-bombs --minutes 3  # photos at half capacity beside decoding bombs

memory: each round sends 128 requests at once, 32 of each kind (--kinds: fewer kinds, more of each):
a 10 MB JSON body (a 7.8-megapixel noise PNG in base64, the largest body allowed), a batch of 16
one-colour 5000x5000 16-bit RGBA PNGs (3.2 MB that decode to 400 megapixels), a 64x64 JPEG whose
header claims 5000x4999, and a 5000x5000 photo JPEG with detection. It reports the server's peak
RSS (sampled every 20 ms), its RSS before and after each round, and every status code.

soak: measures capacity (photos with detection, 16 connections, 15 s), then for --minutes runs photo
requests at twice that rate beside 50 slow uploaders, 20 slowloris header tricklers, a client that
drops its upload midway every 0.2 s, and every 2 s a pixel-bomb batch, a lying JPEG, a 10 MB JSON
body, one of the decoding bombs below and a 10 MB JSON list of 3.4 million empty strings; and, from
issue 33, 7 connections that declare a 10 MB body and send nothing, a body framed both by
Content-Length: 0 and chunks every second, and 5,000 headers in one write every second. It reports
the statuses of each kind, 5xx other than 503 (the goal is 0: overload is answered with 503 +
Retry-After by design), the p50/p99 of normal requests answered 200, and the server's RSS every 5 s.
Client and server share the machine: the figures are for both on the same cores.

beside-bombs: measures capacity, then for --minutes sends photos at --load (default half) of it while
--bombers clients (default 4), in a process of their own, send decoding bombs back to back
(bench/hostile_images.py: JPEGs of 20,000 and 3,000 scans, floods of JPEG segments, stray bytes and
PNG chunks, PNG data in 12-byte chunks, run-length BMP).
It reports every status and the p50/p99 of the photos (the goal: all 200, p99 under 2 s on 2 cores).
"""

import argparse
import asyncio
import base64
import collections
import io
import json
import multiprocessing
import os
import random
import statistics
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from api_load import photos
from hostile_images import (
    chunk_flood_png,
    pixel_bomb_png,
    run_length_bmp,
    scan_bomb_jpeg,
    segment_flood_jpeg,
    split_data_png,
    with_jpeg_size,
)
from PIL import Image
from servers import free_port, start_server  # bench/servers.py

from fer.device import describe_device

MB = 1024 * 1024


# ---- the server -----------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class RssSampler:
    """The server's RSS every `interval` seconds, in a thread: the peak and the timeline."""

    def __init__(self, pid: int, interval: float):
        self.pid, self.interval, self.samples = pid, interval, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RssSampler":
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append((time.monotonic() - self.started, rss_mb(self.pid)))

    @property
    def peak(self) -> float:
        return max(rss for _, rss in self.samples)


# ---- worst-case payloads --------------------------------------------------------------------------


def largest_json_body() -> bytes:
    """{"image": base64 of a 2790x2790 noise PNG}: just under the 10 MiB body limit."""
    noise = np.random.default_rng(0).integers(0, 256, (2790, 2790), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG", compress_level=1)
    return json.dumps({"image": base64.b64encode(buffer.getvalue()).decode()}).encode()


def lying_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return with_jpeg_size(buffer.getvalue(), 5000, 4999)


def huge_photo() -> bytes:
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((5000, 5000)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def decoding_bombs() -> list[bytes]:
    """Images that cost far more to decode than their pixels (issue 33), each a few MB at most."""
    jpeg = _small_jpeg()
    after_app0 = 4 + int.from_bytes(jpeg[4:6], "big")
    return [
        scan_bomb_jpeg(5000, 5000, 20_000),
        scan_bomb_jpeg(5000, 5000, 3_000),
        segment_flood_jpeg(jpeg, 10_000_000),
        jpeg[:after_app0] + b"\xff" * 10_000_000 + jpeg[after_app0:],
        chunk_flood_png(10_000_000),
        split_data_png(10_000_000),
        run_length_bmp(),
    ]


def _small_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def comma_json() -> bytes:
    """{"images": ["", "", ...]} of 3.4 million entries: 10 MB, refused before it is parsed."""
    return b'{"images": [' + b'"",' * 3_400_000 + b'""]}'


class Payloads:
    def __init__(self) -> None:
        self.bomb_batch = [("files", (f"bomb{i}.png", pixel_bomb_png())) for i in range(16)]
        self.json_body = largest_json_body()
        self.liar = lying_jpeg()
        self.huge = huge_photo()
        self.photos = photos(32)
        self.decoding_bombs = decoding_bombs()
        self.comma_json = comma_json()

    async def send(self, client: httpx.AsyncClient, kind: str) -> httpx.Response:
        if kind == "bombs":
            return await client.post("/v1/predict/batch", files=self.bomb_batch)
        if kind == "json":
            return await client.post(
                "/v1/predict", content=self.json_body, headers={"Content-Type": "application/json"}
            )
        if kind == "decoding":
            return await client.post("/v1/predict", files={"file": ("b", random.choice(self.decoding_bombs))})
        if kind == "commas":
            return await client.post(
                "/v1/predict/batch", content=self.comma_json, headers={"Content-Type": "application/json"}
            )
        if kind == "liar":
            return await client.post("/v1/predict", files={"file": ("liar.jpg", self.liar)})
        if kind == "huge":
            return await client.post("/v1/predict", files={"file": ("huge.jpg", self.huge)})
        return await client.post("/v1/predict", files={"file": ("photo.jpg", random.choice(self.photos))})


async def status_of(request) -> str:
    try:
        return str((await request).status_code)
    except httpx.HTTPError as error:
        return type(error).__name__


# ---- memory ---------------------------------------------------------------------------------------


async def memory_rounds(url: str, payloads: Payloads, rounds: int, pid: int, kinds: list[str]) -> list[dict]:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=0)
    results = []
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        for number in range(1, rounds + 1):
            before = rss_mb(pid)
            sent = kinds * (128 // len(kinds))
            started = time.monotonic()
            statuses = await asyncio.gather(*(status_of(payloads.send(client, kind)) for kind in sent))
            seconds = time.monotonic() - started
            await asyncio.sleep(2)
            by_kind = {
                kind: dict(collections.Counter(s for k, s in zip(sent, statuses) if k == kind)) for kind in kinds
            }
            after = rss_mb(pid)
            results.append(
                {"round": number, "rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1)}
                | {"seconds": round(seconds, 1), "statuses": by_kind}
            )
            print(f"round {number}: {seconds:.1f} s, RSS {before:.0f} -> {rss_mb(pid):.0f} MB, {by_kind}")
    return results


def run_memory(args: argparse.Namespace) -> dict:
    payloads = Payloads()
    port = free_port()
    server = start_server(port, {})
    url = f"http://127.0.0.1:{port}"
    try:
        for photo in payloads.photos[:8]:  # warm: the first photos allocate the detector's buffers
            httpx.post(f"{url}/v1/predict", files={"file": ("p.jpg", photo)}, timeout=30)
        baseline = rss_mb(server.pid)
        print(f"server ready and warm: RSS {baseline:.0f} MB")
        with RssSampler(server.pid, 0.02) as sampler:
            rounds = asyncio.run(memory_rounds(url, payloads, args.rounds, server.pid, args.kinds))
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
    finally:
        server.terminate()
        server.wait(30)
    five_hundreds = sum(
        int(s) >= 500 and s != "503" for r in rounds for k in r["statuses"].values() for s in k if s.isdigit()
    )
    report = {
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_mb": round(sampler.peak, 1),
        "rounds": rounds,
        "5xx_other_than_503": five_hundreds,
        "server_requests": [line for line in metrics.splitlines() if line.startswith("fer_requests_total")],
    }
    print(f"peak RSS {sampler.peak:.0f} MB (baseline {baseline:.0f} MB); 5xx other than 503: {five_hundreds}")
    return report


# ---- soak -----------------------------------------------------------------------------------------


async def capacity(url: str, payloads: Payloads, seconds: float = 15) -> float:
    done = 0
    stop = time.monotonic() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.monotonic() < stop:
            if (await payloads.send(client, "photo")).status_code == 200:
                done += 1

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(16)))
    return done / seconds


async def slow_uploader(host: str, port: int, stop: float, tally: collections.Counter) -> None:
    """Declares a 40,000-byte body and sends 100 bytes a second; reconnects whenever it is cut off."""
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 40000\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")  # fmt: skip
            while time.monotonic() < stop and not reader.at_eof():
                writer.write(b"x" * 100)
                await writer.drain()
                try:
                    answer = await asyncio.wait_for(reader.read(12), 1)
                except asyncio.TimeoutError:
                    continue
                tally[answer[9:12].decode(errors="replace") or "closed"] += 1
                break
            writer.close()
        except (ConnectionError, OSError):
            tally["refused"] += 1
            await asyncio.sleep(0.5)


async def slowloris(host: str, port: int, stop: float, tally: collections.Counter) -> None:
    """Sends request headers a byte every 0.5 s, forever; reconnects whenever it is cut off."""
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 10_000:
                writer.write(bytes([byte]))
                await writer.drain()
                try:
                    if await asyncio.wait_for(reader.read(1), 0.5) == b"":
                        tally["cut off"] += 1
                        break
                except asyncio.TimeoutError:
                    pass
                if time.monotonic() > stop:
                    break
            writer.close()
        except (ConnectionError, OSError):
            tally["cut off"] += 1
            await asyncio.sleep(0.5)


async def disconnector(host: str, port: int, stop: float, tally: collections.Counter) -> None:
    """Every 0.2 s: starts a 40,000-byte upload, sends 5,000 bytes of it and hangs up."""
    while time.monotonic() < stop:
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.write(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 40000\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n" + b"x" * 5000)  # fmt: skip
            await writer.drain()
            writer.close()
            tally["dropped"] += 1
        except (ConnectionError, OSError):
            tally["refused"] += 1
        await asyncio.sleep(0.2)


async def silent_declarer(host: str, port: int, stop: float, tally: collections.Counter) -> None:
    """Sends headers declaring a 10 MB body, then nothing; reconnects when answered or cut off. Before
    issue 33 the whole declared length was reserved at once: 7 of these filled the upload budget."""
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")  # fmt: skip
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(12), max(0.1, stop - time.monotonic()))
            tally[answer[9:12].decode(errors="replace") or "closed"] += 1
            writer.close()
        except asyncio.TimeoutError:
            tally["still open at the end"] += 1
        except (ConnectionError, OSError):
            tally["refused"] += 1
            await asyncio.sleep(0.5)


async def raw_every_second(request: bytes, host: str, port: int, stop: float, tally: collections.Counter) -> None:
    """Sends `request` in one write every second and tallies the status of each answer."""
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(12), 10)
            tally[answer[9:12].decode(errors="replace") or "closed"] += 1
            writer.close()
        except (ConnectionError, OSError, asyncio.TimeoutError) as error:
            tally[type(error).__name__] += 1
        await asyncio.sleep(1)


FRAMED_TWO_WAYS = (
    b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 0\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n" + (b"10000\r\n" + b"{" * 65536 + b"\r\n") * 16
)
HEADER_FLOOD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(5000)) + b"\r\n"


async def soak_load(url: str, payloads: Payloads, rate: float, minutes: float, pid: int) -> dict:
    host, port = url.removeprefix("http://").split(":")
    port_number = int(port)
    stop = time.monotonic() + minutes * 60
    tallies = collections.defaultdict(collections.Counter)
    latencies: list[float] = []
    rss = []
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=64)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def normal_request() -> None:
            started = time.monotonic()
            status = await status_of(payloads.send(client, "photo"))
            tallies["normal"][status] += 1
            if status == "200":
                latencies.append(time.monotonic() - started)

        async def normal_traffic() -> None:
            pending = set()
            while time.monotonic() < stop:
                if len(pending) < 400:  # bounded: a stuck server cannot make the client grow without end
                    task = asyncio.create_task(normal_request())
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                else:
                    tallies["normal"]["not sent (400 outstanding)"] += 1
                await asyncio.sleep(random.expovariate(rate))
            await asyncio.gather(*pending)

        async def bombs() -> None:
            while time.monotonic() < stop:
                for kind in ("bombs", "liar", "json", "decoding", "commas"):
                    tallies[kind][await status_of(payloads.send(client, kind))] += 1
                await asyncio.sleep(2)

        async def sample_rss() -> None:
            started = time.monotonic()
            while time.monotonic() < stop:
                rss.append((round(time.monotonic() - started), round(rss_mb(pid), 1)))
                await asyncio.sleep(5)

        tasks = [normal_traffic(), bombs(), sample_rss(), disconnector(host, port_number, stop, tallies["disconnects"])]
        tasks += [slow_uploader(host, port_number, stop, tallies["slow uploaders"]) for _ in range(50)]
        tasks += [slowloris(host, port_number, stop, tallies["slowloris"]) for _ in range(20)]
        tasks += [silent_declarer(host, port_number, stop, tallies["silent 10 MB declarers"]) for _ in range(7)]
        tasks.append(raw_every_second(FRAMED_TWO_WAYS, host, port_number, stop, tallies["framed two ways"]))
        tasks.append(raw_every_second(HEADER_FLOOD, host, port_number, stop, tallies["5,000 headers"]))
        await asyncio.gather(*tasks)

    latencies.sort()
    return {
        "statuses": {kind: dict(tally) for kind, tally in tallies.items()},
        "normal_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "normal_p99_s": round(latencies[int(0.99 * (len(latencies) - 1))], 3) if latencies else None,
        "rss_mb": rss,
    }


async def beside_bombs_load(url: str, payloads: Payloads, rate: float, minutes: float, bombers: int) -> dict:
    """Photos at `rate` from this process, bombs from `bombers` clients in a process of their own: on one
    event loop, pushing 10 MB bodies delayed the photos' own sends and reads, which the server's latency
    would then have been blamed for (p99 4.6 s with 4 bombers in one loop, against 0.7 s with 1)."""
    stop = time.monotonic() + minutes * 60
    tallies = collections.defaultdict(collections.Counter)
    latencies: list[float] = []
    context = multiprocessing.get_context("spawn")
    bomb_results = context.Queue()
    bomb_sender = context.Process(target=send_bombs, args=(url, time.time() + minutes * 60, bombers, bomb_results))
    bomb_sender.start()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def photo() -> None:
            started = time.monotonic()
            status = await status_of(payloads.send(client, "photo"))
            tallies["photos"][status] += 1
            if status == "200":
                latencies.append(time.monotonic() - started)

        pending = set()
        while time.monotonic() < stop:
            task = asyncio.create_task(photo())
            pending.add(task)
            task.add_done_callback(pending.discard)
            await asyncio.sleep(random.expovariate(rate))
        await asyncio.gather(*pending)
    bomb_tally, bomb_seconds = bomb_results.get(timeout=120)
    bomb_sender.join()
    if bomb_tally:
        tallies["decoding bombs"].update(bomb_tally)
    latencies.sort()
    bomb_seconds.sort()
    return {
        "statuses": {kind: dict(tally) for kind, tally in tallies.items()},
        "photo_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "photo_p99_s": round(latencies[int(0.99 * (len(latencies) - 1))], 3) if latencies else None,
        "bomb_answer_p50_s": round(statistics.median(bomb_seconds), 3) if bomb_seconds else None,
        "bomb_answer_max_s": round(bomb_seconds[-1], 3) if bomb_seconds else None,
    }


def send_bombs(url: str, stop_at: float, bombers: int, results: "multiprocessing.Queue") -> None:
    """In a process of its own: `bombers` clients send decoding bombs back to back until `stop_at`
    (time.time()); puts ({status: count}, [seconds per answer]) on `results`."""
    bombs = decoding_bombs()
    tally: collections.Counter = collections.Counter()
    seconds: list[float] = []

    async def bomber(client: httpx.AsyncClient) -> None:
        while time.time() < stop_at:
            started = time.monotonic()
            tally[await status_of(client.post("/v1/predict", files={"file": ("b", random.choice(bombs))}))] += 1
            seconds.append(time.monotonic() - started)

    async def all_bombers() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await asyncio.gather(*(bomber(client) for _ in range(bombers)))

    asyncio.run(all_bombers())
    results.put((dict(tally), seconds))


def run_beside_bombs(args: argparse.Namespace) -> dict:
    payloads = Payloads()
    port = free_port()
    server = start_server(port, {})
    url = f"http://127.0.0.1:{port}"
    try:
        measured = asyncio.run(capacity(url, payloads))
        rate = args.load * measured
        beside = f"beside {args.bombers} bombers for {args.minutes:g} min"
        print(f"capacity {measured:.1f} photos/s; photos at {rate:.1f}/s {beside}")
        result = asyncio.run(beside_bombs_load(url, payloads, rate, args.minutes, args.bombers))
    finally:
        server.terminate()
        server.wait(30)
    report = {"capacity_photos_per_s": round(measured, 1), "photo_rate_per_s": round(rate, 1), "bombers": args.bombers}
    report.update(result)
    print(json.dumps(report, indent=2))
    return report


def run_soak(args: argparse.Namespace) -> dict:
    payloads = Payloads()
    port = free_port()
    server = start_server(port, {})
    url = f"http://127.0.0.1:{port}"
    try:
        measured = asyncio.run(capacity(url, payloads))
        rate = args.load * measured
        print(f"capacity {measured:.1f} photos/s; soaking at {rate:.1f} req/s for {args.minutes:g} min")
        result = asyncio.run(soak_load(url, payloads, rate, args.minutes, server.pid))
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        alive = httpx.get(f"{url}/readyz", timeout=10).status_code
    finally:
        server.terminate()
        server.wait(30)
    server_statuses = collections.Counter()
    for line in metrics.splitlines():
        if line.startswith("fer_requests_total{"):
            status = line.split('status="')[1].split('"')[0]
            server_statuses[status] += int(float(line.rsplit(" ", 1)[1]))
    five_hundreds = sum(
        count for status, count in server_statuses.items() if status.startswith("5") and status != "503"
    )
    rss = result["rss_mb"]
    warm = [value for seconds, value in rss if seconds >= 120] or [value for _, value in rss]
    report = {
        "capacity_photos_per_s": round(measured, 1),
        "offered_rate_per_s": round(rate, 1),
        "minutes": args.minutes,
        **result,
        "server_statuses": dict(server_statuses),
        "5xx_other_than_503": five_hundreds,
        "rss_after_warm_up_mb": {"first": warm[0], "last": warm[-1], "min": min(warm), "max": max(warm)},
        "ready_after": alive,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "rss_mb"}, indent=2))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    memory = commands.add_parser("memory", help="peak RSS under 128 worst-case requests at once")
    memory.add_argument("--rounds", type=int, default=3)
    kinds = ["json", "bombs", "liar", "huge"]
    memory.add_argument("--kinds", nargs="+", choices=kinds, default=kinds, help="the worst cases to send (128 in all)")
    soak = commands.add_parser("soak", help="mixed hostile and normal load for a while")
    soak.add_argument("--minutes", type=float, default=30)
    soak.add_argument("--load", type=float, default=2.0, help="normal traffic as a multiple of measured capacity")
    beside = commands.add_parser("beside-bombs", help="photos beside a stream of decoding bombs")
    beside.add_argument("--minutes", type=float, default=3)
    beside.add_argument("--load", type=float, default=0.5, help="photos as a multiple of measured capacity")
    beside.add_argument("--bombers", type=int, default=4, help="clients sending decoding bombs back to back")
    for command in (memory, soak, beside):
        command.add_argument("--json", metavar="PATH", help="also write every figure to this JSON file")
    args = parser.parse_args()
    machine = f"{describe_device(torch.device('cpu'))}, {os.cpu_count()} cores"
    print(f"machine: {machine}")
    runs = {"memory": run_memory, "soak": run_soak, "beside-bombs": run_beside_bombs}
    report = runs[args.command](args)
    report["machine"] = machine
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
