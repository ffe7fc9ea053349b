"""`fer serve` processes on loopback for the benchmarks that need a real server (imported by the
scripts beside it): start one, wait until it is ready, find a free port."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_server(port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`fer serve` on 127.0.0.1:`port` with the shipped model, its output discarded; not yet ready."""
    fer = Path(sys.executable).with_name("fer")
    return subprocess.Popen(
        [str(fer), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_until_ready(port: int, process: subprocess.Popen, timeout_s: float = 120) -> None:
    """Until 127.0.0.1:`port`/readyz answers 200 (`process` serves it: fer serve, or a load balancer in
    front of replicas); RuntimeError if the process exits or it takes longer than `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} on port {port} exited ({process.returncode}) before it was ready")
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{process.args[0]} on port {port} was not ready within {timeout_s:g} s")


def start_server(port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A ready `fer serve` on 127.0.0.1:`port`."""
    process = launch_server(port, env)
    wait_until_ready(port, process)
    return process
