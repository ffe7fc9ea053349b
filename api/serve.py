"""Starting the service under uvicorn, for `fer serve`.

Settings travel to the app through FER_* environment variables, so that one worker or many (each a
process with its own model) read the same values; uvicorn's supervisor restarts a worker that dies.
"""

import copy
import errno
import logging
import os
import socket
from pathlib import Path

import uvicorn
from pydantic import ValidationError
from uvicorn.config import LOGGING_CONFIG

from api.protocol import HeaderTimeoutH11Protocol
from api.settings import Settings
from fer.errors import FerError

# SIGTERM: uvicorn stops accepting connections and waits this long for requests in flight (each has
# its own deadline, 10 s by default), leaving time to stop the batcher within 30 s in all.
GRACEFUL_SHUTDOWN_S = 20

# uvicorn's own logging, plus the service's "api" logger (model ready, draining) on the same handler.
LOG_CONFIG = copy.deepcopy(LOGGING_CONFIG)
LOG_CONFIG["loggers"]["api"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
LOG_CONFIG["filters"] = {"without_query_strings": {"()": "api.serve.WithoutQueryStrings"}}
LOG_CONFIG["handlers"]["access"]["filters"] = ["without_query_strings"]


class WithoutQueryStrings(logging.Filter):
    """uvicorn's access log writes each request's path with its query string, where a client may have
    put a secret (?api_key=...): the query is left out, and the line says there was one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:  # client, method, path, version, status
            client, method, path, version, status = record.args
            if isinstance(path, str) and "?" in path:
                record.args = (client, method, path.split("?", 1)[0] + "?<query left out>", version, status)
        return True


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    weights: str | None = None,
    device: str | None = None,
    tta: str | None = None,
    workers: int = 1,
    backend: str | None = None,
    detector: str | None = None,
    log_level: str = "info",
) -> None:
    if workers < 1:
        raise FerError("--workers must be 1 or more")
    if not 0 <= port <= 65535:
        raise FerError(f"--port must be between 0 and 65535, not {port}")
    if weights is not None:
        if not Path(weights).exists():
            raise FerError(f"no weights at {weights}")
        os.environ["FER_WEIGHTS"] = str(Path(weights).resolve())
    if device is not None:
        os.environ["FER_DEVICE"] = device
    if tta is not None:
        os.environ["FER_TTA"] = tta
    if backend is not None:
        os.environ["FER_BACKEND"] = backend
    if detector is not None:
        os.environ["FER_DETECTOR"] = detector
    settings = check_settings()
    # Everything a user can get wrong is checked here, in one line each, before a worker spends
    # seconds loading the model only to fail in its lifespan with a traceback.
    check_port_is_free(host, port)
    check_model_loads(settings)
    uvicorn.run(
        "api:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        log_config=LOG_CONFIG,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        server_header=False,  # do not advertise the server software
        http=HeaderTimeoutH11Protocol,  # uvicorn's h11 protocol, with a deadline for request headers
    )


def check_port_is_free(host: str, port: int) -> None:
    """Bind the address once, as uvicorn will (SO_REUSEADDR), and let it go."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise FerError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    family, kind, protocol, _, address = infos[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            hint = "; pick another --port" if error.errno == errno.EADDRINUSE else ""
            raise FerError(f"cannot listen on {host}:{port}: {error.strerror}{hint}") from None


def check_model_loads(settings: Settings) -> None:
    """Load the model once as the server will (about a second): a file that is not fer weights, or an
    engine the device cannot run, is the same one line as in `fer evaluate`, not a lifespan traceback
    from every worker. The same load, not a fuller one: with workers=1 uvicorn serves from this
    process, which must not import torch when the server will not use it."""
    from fer.predictor import Predictor

    Predictor.load(
        settings.weights, settings.device, settings.tta, backend=settings.backend, detector=settings.detector
    )


def check_settings() -> Settings:
    """Read the FER_* settings once here, so that a bad value is one clear line, not a worker's traceback."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(f"FER_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        raise FerError(f"bad setting: {problems}") from None
