"""Replicas behind a real load balancer (issue 35): three `fer serve` processes and HAProxy on
loopback, under steady load, while one replica is killed (SIGKILL), another drained (SIGTERM), and the
killed one started again, as Kubernetes would do to pods. Needs Debian's haproxy (`make test` installs
it where apt-get can run).

    python bench/load_balancer.py                            # 60 s: kill at 15, drain at 30, restart at 35
    python bench/load_balancer.py --seconds 20 --kill-at 5 --drain-at 10 --restart-at 12 --json lb.json

HAProxy checks each replica's /readyz every 250 ms (`fall 1 rise 2`), so a replica is out of rotation
within a check of turning unready (from SIGTERM on, or while it loads) or dying; it retries a request
whose connection failed on another replica (`retries 3`, `option redispatch`), which never reached a
server and is safe to resend. A drained replica keeps its port open 1 s after SIGTERM
(FER_DRAIN_DELAY_S), so that HAProxy's checks take it out of rotation before the port closes. A
request already sent to the replica that is killed has no answer to give: HAProxy closes its
client's connection (or answers 502), and no other request may fail. HAProxy
names the replica of every answer, its own 502s included, in `X-Fer-Replica`; a request with no answer
at all is traced by its times, sent before the killed replica died and ended after the kill.

--clients connections send --workload requests back to back (photos: 640x480 JPEGs with one face,
detection on; crops: 48x48 faces with detect=false). It reports every request's status by replica,
the failures and whether each was in flight on the killed replica when it died, the drained replica's
exit status and time, and requests/s second by second: before the kill, after it, and how long until
throughput was back to 80% of what it was before.
"""

import argparse
import asyncio
import collections
import csv
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from api_load import face_crops, photos  # bench/api_load.py, beside this script
from servers import free_port, launch_server, wait_until_ready

from fer.cpu import cpu_info

REPLICAS = 3
KILLED, DRAINED = 0, 1  # which replicas the faults hit
REPLICA_HEADER = "X-Fer-Replica"
# A draining replica keeps its port open 1 s (4 of HAProxy's checks) after SIGTERM turns its readiness,
# so that HAProxy has taken it out of rotation before the port closes: closing at once reset the
# connections the kernel had just accepted for it, with a request on them (1 lost in about 5 runs).
REPLICA_ENV = {"FER_DRAIN_DELAY_S": "1"}


# ---- HAProxy --------------------------------------------------------------------------------------


def haproxy_config(port: int, replica_ports: list[int], stats_socket: Path) -> str:
    """HAProxy in front of the replicas: health checks on /readyz, retries of failed connections on
    another replica, the replica of every answer in a header, and its statistics on a socket."""
    servers = "\n".join(
        f"    server replica{index} 127.0.0.1:{replica_port} check" for index, replica_port in enumerate(replica_ports)
    )
    return f"""global
    maxconn 1024
    stats socket {stats_socket}

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # A connection that fails (refused: a replica dead or draining) is retried on another replica.
    retries 3
    option redispatch 1
    # A new connection to a replica for each request: an idle kept-alive one that a draining replica
    # closes just as a request is sent on it would fail that request, which never reached the app.
    option http-server-close

frontend api
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 250ms fall 1 rise 2
    # After HAProxy's own answers too (a 502 for a replica that died mid-request): where it was.
    http-after-response set-header {REPLICA_HEADER} %s
{servers}
"""


def find_haproxy() -> str | None:
    """On PATH, or where Debian puts it (/usr/sbin, often off a user's PATH)."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")


def start_haproxy(haproxy: str, config: str, folder: Path) -> subprocess.Popen:
    path = folder / "haproxy.cfg"
    path.write_text(config)
    check = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy refused its configuration: {check.stdout}{check.stderr}")
    # Its output (a warning each time a replica goes down or up) is not read: a pipe would fill.
    return subprocess.Popen([haproxy, "-db", "-f", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def sessions_on(stats_socket: Path, server: str) -> int:
    """Requests HAProxy has on `server` now (its `scur`), read from the statistics socket."""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(str(stats_socket))
        connection.sendall(b"show stat\n")
        text = b"".join(iter(lambda: connection.recv(65536), b"")).decode()
    rows = csv.DictReader(text.lstrip("# ").splitlines())
    return next(int(row["scur"]) for row in rows if row["svname"] == server)


# ---- load and faults ------------------------------------------------------------------------------


class Requests:
    """Every request: (start s, end s, status or error name, replica), times from the load's start."""

    def __init__(self) -> None:
        self.records: list[tuple[float, float, str, str]] = []

    def add(self, started: float, ended: float, status: str, replica: str) -> None:
        self.records.append((started, ended, status, replica))


async def client_loop(url: str, payloads: list[bytes], query: str, stop: float, origin: float, log: Requests):
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while time.monotonic() < stop:
            started = time.monotonic() - origin
            try:
                response = await client.post(f"/v1/predict{query}", files={"file": ("image", random.choice(payloads))})
                status, replica = str(response.status_code), response.headers.get(REPLICA_HEADER, "?")
            except httpx.HTTPError as error:
                status, replica = type(error).__name__, "?"  # no answer at all
            log.add(started, time.monotonic() - origin, status, replica)


async def faults(replicas: list[subprocess.Popen], ports: list[int], stats: Path, args, origin: float, events: dict):
    async def at(second: float) -> None:
        await asyncio.sleep(max(0.0, origin + second - time.monotonic()))

    await at(args.kill_at)
    events["in_flight_on_killed"] = sessions_on(stats, f"replica{KILLED}")
    replicas[KILLED].send_signal(signal.SIGKILL)
    events["killed"] = time.monotonic() - origin
    await asyncio.to_thread(replicas[KILLED].wait)
    events["died"] = time.monotonic() - origin
    await at(args.drain_at)
    replicas[DRAINED].send_signal(signal.SIGTERM)
    events["drain_started"] = time.monotonic() - origin
    await at(args.restart_at)
    replicas[KILLED] = launch_server(ports[KILLED], REPLICA_ENV)  # as Kubernetes restarts the pod
    events["restarted"] = time.monotonic() - origin
    drained = replicas[DRAINED]
    await asyncio.to_thread(drained.wait)
    # uvicorn ends a graceful shutdown by raising the signal again: -15 (SIGTERM) is a clean drain.
    events["drained_exit_status"] = drained.returncode
    events["drained_exited_after_s"] = time.monotonic() - origin - events["drain_started"]


async def run_load(url: str, replicas, ports, stats: Path, args) -> tuple[Requests, dict]:
    payloads, query = (photos(32), "") if args.workload == "photos" else (face_crops(64), "?detect=false")
    log, events = Requests(), {}
    origin = time.monotonic()
    stop = origin + args.seconds
    clients = [client_loop(url, payloads, query, stop, origin, log) for _ in range(args.clients)]
    await asyncio.gather(faults(replicas, ports, stats, args, origin, events), *clients)
    return log, events


# ---- the report -----------------------------------------------------------------------------------


def report(log: Requests, events: dict, args) -> dict:
    killed_at = events["killed"]
    killed_name = f"replica{KILLED}"
    statuses = collections.Counter(status for _, _, status, _ in log.records)
    by_replica = collections.defaultdict(collections.Counter)
    for _, _, status, replica in log.records:
        by_replica[replica][status] += 1
    failures = [
        {
            "started_s": round(started, 3),
            "ended_s": round(ended, 3),
            "status": status,
            "replica": replica,
            # Sent before the replica died and ended after the kill, answered by HAProxy for it (502)
            # or not at all (the connection closed): a request the killed replica had.
            "in_flight_on_killed": replica in (killed_name, "?") and started <= events["died"] and ended >= killed_at,
        }
        for started, ended, status, replica in log.records
        if status != "200"
    ]
    seconds = int(args.seconds)
    per_second = [0] * seconds
    for _, ended, status, _ in log.records:
        if status == "200" and int(ended) < seconds:
            per_second[int(ended)] += 1
    before = statistics.median(per_second[1 : int(killed_at)]) if int(killed_at) > 1 else per_second[0]
    recovered = next(
        (second for second in range(int(killed_at) + 1, seconds) if per_second[second] >= 0.8 * before), None
    )
    restarted_serving = [
        ended for _, ended, status, replica in log.records if replica == killed_name and ended > events["restarted"]
    ]
    return {
        "workload": args.workload,
        "clients": args.clients,
        "seconds": args.seconds,
        "events_s": {key: round(value, 2) if isinstance(value, float) else value for key, value in events.items()},
        "requests": len(log.records),
        "statuses": dict(statuses),
        "by_replica": {replica: dict(counts) for replica, counts in sorted(by_replica.items())},
        "failures": failures,
        "lost_beyond_in_flight_on_killed": sum(not failure["in_flight_on_killed"] for failure in failures),
        "requests_per_s": per_second,
        "requests_per_s_before_kill": before,
        "recovered_to_80_percent_s_after_kill": None if recovered is None else recovered - int(killed_at),
        "restarted_replica_first_answer_s": round(min(restarted_serving), 2) if restarted_serving else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="how long the load runs")
    parser.add_argument("--kill-at", type=float, default=15, help="SIGKILL replica 0 at this second")
    parser.add_argument("--drain-at", type=float, default=30, help="SIGTERM replica 1 at this second")
    parser.add_argument("--restart-at", type=float, default=35, help="start replica 0 again at this second")
    parser.add_argument("--clients", type=int, default=16, help="connections sending back to back")
    parser.add_argument("--workload", choices=("photos", "crops"), default="photos")
    parser.add_argument("--json", metavar="PATH", help="also write the report to this JSON file")
    args = parser.parse_args()
    if not args.kill_at < args.drain_at < args.restart_at < args.seconds:
        parser.error("the faults come in order within the run: --kill-at < --drain-at < --restart-at < --seconds")
    haproxy = find_haproxy()
    if haproxy is None:
        sys.exit("no haproxy on this machine: apt-get install haproxy (Debian's package)")

    ports = [free_port() for _ in range(REPLICAS)]
    replicas = [launch_server(port, REPLICA_ENV) for port in ports]
    balancer = None
    try:
        for port, process in zip(ports, replicas):
            wait_until_ready(port, process)
        with tempfile.TemporaryDirectory() as folder:
            port = free_port()
            stats = Path(folder) / "haproxy.sock"
            balancer = start_haproxy(haproxy, haproxy_config(port, ports, stats), Path(folder))
            wait_until_ready(port, balancer, timeout_s=30)  # through a replica its checks passed
            log, events = asyncio.run(run_load(f"http://127.0.0.1:{port}", replicas, ports, stats, args))
    finally:
        for process in [*replicas, *([balancer] if balancer else [])]:
            if process.poll() is None:
                process.terminate()
        for process in [*replicas, *([balancer] if balancer else [])]:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    result = report(log, events, args)
    result["machine"] = f"{cpu_info().describe()}, {os.cpu_count()} cores; load and replicas share them"
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
