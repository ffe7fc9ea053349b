"""The application factory.

    uvicorn --factory api:create_app --host 127.0.0.1 --port 8000    # settings from FER_* variables

The model is loaded and warmed up in the lifespan, before the server accepts a connection; SIGTERM
turns readiness to 503 at once, and uvicorn then lets in-flight requests finish before the lifespan
stops the batcher.
"""

import logging
import os
import signal
import threading
import warnings
from collections.abc import Callable
from contextlib import asynccontextmanager
from types import FrameType

import anyio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from PIL import Image

from api.budgets import UploadBudget
from api.errors import install_error_handlers
from api.memory import return_freed_memory
from api.metrics import Metrics
from api.middleware import BodyIntake, HeaderLimits, RequestMetrics, SecurityHeaders
from api.routes import page, predict, probes
from api.service import InferenceService
from api.settings import Settings
from fer import __version__
from fer.predictor import Predictor

logger = logging.getLogger("api")

DESCRIPTION = """Facial expression recognition: post an image, get every face's box and the probabilities
of the 7 FER2013 emotions (angry, disgust, fear, happy, sad, surprise, neutral).

Faces of concurrent requests are classified together in batches. Errors are always
`{"error": {"code": ..., "message": ...}}`."""


def create_app(settings: Settings | None = None, predictor: Predictor | None = None) -> FastAPI:
    """`predictor`: an already loaded model (tests, embedding); default: load `settings.weights`."""
    settings = settings or Settings()
    metrics = Metrics()
    return_freed_memory()
    # Uploads are checked against settings.max_pixels before decoding; Pillow's own warning would only
    # add noise to the logs for an image that is refused anyway.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loaded = predictor or await anyio.to_thread.run_sync(
            lambda: Predictor.load(
                settings.weights, settings.device, settings.tta, backend=settings.backend, detector=settings.detector
            )
        )
        service = InferenceService(loaded, settings, metrics)
        await service.start()
        app.state.service = service
        restore_sigterm = _drain_on_sigterm(service, settings.drain_delay_s)
        try:
            yield
        finally:
            service.draining = True
            restore_sigterm()
            await service.stop()
            app.state.service = None

    app = FastAPI(
        title="fer",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Swagger UI at /docs (its script and style come from a CDN; the OpenAPI schema is at /openapi.json)
        redoc_url=None,
    )
    app.state.settings, app.state.metrics, app.state.service = settings, metrics, None
    install_error_handlers(app)
    routers = [predict.router, probes.router, page.router]
    for router in routers:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=page.STATIC_DIR), name="static")
    # Added innermost first: security headers wrap the metrics, which wrap the header limits and then
    # the body intake.
    upload_budget = UploadBudget(settings.upload_budget_bytes)
    metrics.upload_bytes.set_function(lambda: upload_budget.held)
    app.add_middleware(
        BodyIntake,
        max_bytes=settings.max_body_bytes,
        budget=upload_budget,
        timeout_s=settings.body_timeout_s,
        retry_after_s=settings.retry_after_s,
        metrics=metrics,
    )
    app.add_middleware(HeaderLimits, metrics=metrics)
    routes = [*app.router.routes, *(route for router in routers for route in router.routes)]
    app.add_middleware(RequestMetrics, metrics=metrics, routes=routes)
    app.add_middleware(SecurityHeaders)
    return app


def _drain_on_sigterm(service: InferenceService, delay_s: float) -> Callable[[], None]:
    """Chain a SIGTERM handler that marks the service draining before uvicorn's own handler runs, at
    once or, with a drain delay, `delay_s` later (meanwhile the port stays open and what reaches it is
    served; a second SIGTERM ends the wait). Returns the function that puts the previous handler back.
    Signals exist only in the main thread (not under TestClient, which runs the app in a worker thread)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)

    def shut_down(signum: int, frame: FrameType | None) -> None:
        if callable(previous):
            previous(signum, frame)  # uvicorn's: stop accepting, finish requests in flight, exit
        elif previous == signal.SIG_DFL:  # not under uvicorn: keep the default, which ends the process
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    def handle_sigterm(signum: int, frame: FrameType | None) -> None:
        first = not service.draining
        service.draining = True
        if first and delay_s > 0:
            logger.info("SIGTERM: readiness is now 503; the port closes in %g s, then requests finish", delay_s)
            # uvicorn's handler only sets flags that its main loop polls, so another thread may call it.
            timer = threading.Timer(delay_s, shut_down, (signum, frame))
            timer.daemon = True  # a second SIGTERM's exit does not wait for it
            timer.start()
            return
        logger.info("SIGTERM: readiness is now 503; finishing requests in flight")
        shut_down(signum, frame)

    signal.signal(signal.SIGTERM, handle_sigterm)
    return lambda: signal.signal(signal.SIGTERM, previous)
