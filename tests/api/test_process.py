"""The server as users run it, in its own process: graceful shutdown on SIGTERM, several workers, and
`fer serve`'s own errors."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import encode, free_port, seconds_until_closed, wait_for_metric
from tests.conftest import REPO


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {process.stdout.read()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server never became ready")


def _start(args: list[str], env: dict | None = None, program: str = sys.executable) -> subprocess.Popen:
    return subprocess.Popen(
        [program, *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _start_fer_serve(*args: str, env: dict | None = None) -> subprocess.Popen:
    return _start(["serve", *args], env, program=str(Path(sys.executable).with_name("fer")))


def _stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def test_sigterm_finishes_requests_in_flight_then_exits(exported_weights, astronaut):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start(["-m", "tests.api.slow_server", str(exported_weights), str(port), "2.0"])
    try:
        _wait_ready(url, server)
        crop = encode(astronaut[60:170, 170:280], "PNG")
        answers = []

        def post():
            answers.append(httpx.post(f"{url}/v1/predict?detect=false", files={"file": ("c", crop)}, timeout=30))

        clients = [threading.Thread(target=post) for _ in range(3)]
        for thread in clients:
            thread.start()
        wait_for_metric(url, "fer_queue_depth", 3)  # the three are admitted...
        time.sleep(0.2)  # ...and inside the 2-second forward pass
        server.send_signal(signal.SIGTERM)
        terminated = time.monotonic()
        refused = False  # the listening socket closes within a tick of uvicorn's loop: new work is refused
        while not refused and time.monotonic() - terminated < 10:
            try:
                httpx.get(f"{url}/healthz", timeout=2)
                time.sleep(0.05)
            except httpx.TransportError:
                refused = True
        assert refused, "the port still took connections 10 s after SIGTERM"
        for thread in clients:
            thread.join(timeout=30)
        output, _ = server.communicate(timeout=30)
        exited_after = time.monotonic() - terminated
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert all(len(answer.json()["faces"]) == 1 for answer in answers)
    assert exited_after < 30
    assert "SIGTERM: readiness is now 503" in output
    assert "Application shutdown complete" in output


def _drain_with_delay(exported_weights, astronaut, delay_s: int, second_sigterm: bool) -> tuple[float, str]:
    """Start `fer serve` with FER_DRAIN_DELAY_S, send SIGTERM, and check that the port still takes new
    connections and serves them while readiness says draining; then (after a second SIGTERM, if asked)
    wait for the exit. Returns the seconds from the first SIGTERM to the exit, and the output."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start_fer_serve(
        "--port", str(port), "--weights", str(exported_weights), "--tta", "none",
        env={"FER_DRAIN_DELAY_S": str(delay_s)},
    )  # fmt: skip
    try:
        _wait_ready(url, server)
        server.send_signal(signal.SIGTERM)
        terminated = time.monotonic()
        deadline = terminated + delay_s / 2
        while (ready := httpx.get(f"{url}/readyz", timeout=5)).status_code != 503:
            assert time.monotonic() < deadline, "readiness did not turn 503 after SIGTERM"
            time.sleep(0.05)
        crop = encode(astronaut[60:170, 170:280], "PNG")
        answer = httpx.post(f"{url}/v1/predict?detect=false", files={"file": ("c", crop)}, timeout=10)
        assert time.monotonic() - terminated < delay_s, "the checks took longer than the delay; they prove nothing"
        if second_sigterm:
            server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=delay_s + 30)
        exited_after = time.monotonic() - terminated
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    assert ready.json() == {"status": "draining"}
    assert answer.status_code == 200 and len(answer.json()["faces"]) == 1  # a new connection, served
    assert f"SIGTERM: readiness is now 503; the port closes in {delay_s} s" in output
    assert "Application shutdown complete" in output
    return exited_after, output


def test_a_drain_delay_keeps_serving_new_connections_while_readiness_says_draining(exported_weights, astronaut):
    # A balancer that polls /readyz sends new connections for up to a check after SIGTERM; closing the
    # port at once reset those the kernel had accepted, a request on them (bench/load_balancer.py).
    exited_after, _ = _drain_with_delay(exported_weights, astronaut, delay_s=4, second_sigterm=False)
    assert 4 <= exited_after < 4 + 30


def test_a_second_sigterm_ends_the_drain_delay(exported_weights, astronaut):
    exited_after, _ = _drain_with_delay(exported_weights, astronaut, delay_s=60, second_sigterm=True)
    assert exited_after < 30  # not the 60 s the delay asked for


def _worker_pids(parent: int) -> list[int]:
    """uvicorn's worker processes: children of the supervisor, not multiprocessing's helpers."""
    children = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
    workers = []
    for pid in children:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"resource_tracker" not in cmdline:
            workers.append(int(pid))
    return workers


def test_workers_keep_serving_when_one_is_killed(exported_weights, astronaut_jpeg):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start_fer_serve(
        "--port", str(port), "--workers", "2", "--weights", str(exported_weights), "--tta", "none",
        env={"FER_HEADER_TIMEOUT_S": "1"},
    )  # fmt: skip
    try:
        _wait_ready(url, server)
        # Each worker runs fer's HTTP protocol: a connection that never sends its headers is closed.
        with socket.create_connection(("127.0.0.1", port)) as silent:
            assert seconds_until_closed(silent) < 3
        deadline = time.monotonic() + 60
        while len(_worker_pids(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = _worker_pids(server.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)

        statuses = []
        for _ in range(20):
            response = httpx.post(f"{url}/v1/predict", files={"file": ("a.jpg", astronaut_jpeg)}, timeout=30)
            statuses.append(response.status_code)
            time.sleep(0.1)
        assert statuses == [200] * 20
    finally:
        _stop(server)


def test_the_access_log_leaves_query_strings_out(exported_weights):
    # A key sent as ?api_key= (or anything else in a query) used to land in the log as it came.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start_fer_serve("--port", str(port), "--weights", str(exported_weights), "--tta", "none")
    try:
        _wait_ready(url, server)
        assert httpx.get(f"{url}/healthz?api_key=topsecret-123").status_code == 200
    finally:
        _stop(server)
    output = server.stdout.read()
    assert '"GET /healthz?<query left out> HTTP/1.1" 200' in output
    assert '"GET /readyz HTTP/1.1" 200' in output  # paths without a query are logged as they are
    assert "topsecret" not in output


def test_plain_uvicorn_starts_the_same_app_from_fer_variables(exported_weights, astronaut_jpeg):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start(
        ["-m", "uvicorn", "--factory", "api:create_app", "--port", str(port)],
        env={"FER_WEIGHTS": str(exported_weights), "FER_TTA": "none", "FER_MAX_FACES": "3"},
    )
    try:
        _wait_ready(url, server)
        assert httpx.get(f"{url}/v1/model").json()["id"].startswith("tiny@")
        response = httpx.post(f"{url}/v1/predict", files={"file": ("a.jpg", astronaut_jpeg)}, timeout=30)
        assert response.status_code == 200 and len(response.json()["faces"]) == 1
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _fer_serve(*args, env=None, timeout=60):
    """`fer serve ARGS`, run to its end (these all fail before serving), with `env` added."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("fer")), "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_serve_with_missing_weights_is_a_clear_error(tmp_path):
    result = _fer_serve("--weights", str(tmp_path / "none.safetensors"))
    assert result.returncode == 2
    assert "no weights at" in result.stderr and "Traceback" not in result.stderr


def test_serve_with_a_bad_setting_is_a_clear_error():
    result = _fer_serve(env={"FER_MAX_BATCH_SIZE": "lots"})
    assert result.returncode == 2
    assert "FER_MAX_BATCH_SIZE" in result.stderr and "Traceback" not in result.stderr


def test_serve_with_an_empty_api_key_refuses_to_start():
    # Before: it served, and every /v1 call got 401, since no client can send an empty key.
    result = _fer_serve(env={"FER_API_KEY": ""})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "FER_API_KEY: Value error, set but empty; unset it to serve without a key" in result.stderr


def test_serve_with_no_workers_is_a_clear_error():
    result = _fer_serve("--workers", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == "fer: error: --workers must be 1 or more"


@pytest.mark.parametrize("port", ["99999", "-5"])
def test_serve_on_an_impossible_port_is_one_line(port):
    result = _fer_serve("--port", port)
    assert result.returncode == 2
    assert result.stderr.strip() == f"fer: error: --port must be between 0 and 65535, not {port}"


def test_serve_on_a_port_in_use_is_one_line_before_the_model_loads():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _fer_serve("--port", str(port))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"fer: error: cannot listen on 127.0.0.1:{port}: Address already in use; pick another --port"
    )


def test_serve_with_a_file_that_is_not_weights_is_one_line(exported_weights, tmp_path):
    # A card beside bytes that are not its weights: the same one line fer evaluate gives.
    fake = tmp_path / "model.safetensors"
    fake.write_bytes(os.urandom(4096))
    (tmp_path / "model.json").write_text(exported_weights.with_suffix(".json").read_text())
    result = _fer_serve("--weights", str(fake), "--port", str(free_port()))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fer: error: {fake}"), result.stderr


def test_the_shipped_model_serves_on_a_cpu_without_loading_torch(astronaut_jpeg):
    # The int8 variant runs on ONNX Runtime, and the TTA views are NumPy: importing torch would add
    # about 690 MB to the server's resident memory for nothing (docs/benchmarks.md, memory).
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start_fer_serve("--port", str(port), "--device", "cpu")
    try:
        _wait_ready(url, server)
        response = httpx.post(f"{url}/v1/predict", files={"file": ("a.jpg", astronaut_jpeg)}, timeout=30)
        model = httpx.get(f"{url}/v1/model", timeout=5).json()
        libraries = Path(f"/proc/{server.pid}/maps").read_text()
    finally:
        _stop(server)
    assert response.status_code == 200 and len(response.json()["faces"]) == 1
    assert model["backend"] == "onnxruntime-int8"
    assert "libtorch" not in libraries and "onnxruntime" in libraries
