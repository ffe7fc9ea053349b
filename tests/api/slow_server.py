"""A real uvicorn server process whose model is slowed down, for the shutdown test:

    python -m tests.api.slow_server WEIGHTS PORT DELAY_SECONDS

It is what `fer serve` runs (same app, same shutdown settings), with SlowPredictor in place of the
model so that requests are still in flight when SIGTERM arrives."""

import sys

import uvicorn

from api import create_app
from api.serve import GRACEFUL_SHUTDOWN_S, LOG_CONFIG
from api.settings import Settings
from fer.predictor import Predictor
from tests.api.conftest import SlowPredictor

if __name__ == "__main__":
    weights, port, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    predictor = SlowPredictor(Predictor.load(weights, device="cpu", tta="none"), delay)
    app = create_app(Settings(max_wait_ms=50), predictor=predictor)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=LOG_CONFIG, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
