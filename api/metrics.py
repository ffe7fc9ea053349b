"""Prometheus metrics, one registry per app (so that tests, and several apps in one process, never
share counters). With `--workers N` each worker process keeps its own; scrape each or run one worker
per container."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fer_requests", "HTTP requests answered, by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "fer_request_duration_seconds",
            "Time from request to response, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "fer_batch_size_faces", "Faces per forward pass of the model", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.detection_batch_size = Histogram(
            "fer_detection_batch_size_images",
            "Photos per gathered face-detection run (FER_GATHER_DETECTION)",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "fer_queue_depth", "Prediction requests admitted and not yet answered", registry=self.registry
        )
        self.rejections = Counter(
            "fer_rejections", "Requests refused, by reason (the error code)", ["reason"], registry=self.registry
        )
        self.abandoned_decodes = Counter(
            "fer_abandoned_decodes",
            "Image decodes stopped midway because their request's deadline had passed (answered 504)",
            registry=self.registry,
        )
        self.faces = Counter("fer_faces_detected", "Faces found in uploaded images", registry=self.registry)
        # Filled by the budgets themselves (set_function): what bounds the server's memory, in use now.
        self.upload_bytes = Gauge(
            "fer_upload_budget_bytes_held",
            "Bytes of request bodies held now (FER_UPLOAD_BUDGET_BYTES)",
            registry=self.registry,
        )
        self.expected_wait = Gauge(
            "fer_expected_wait_seconds",
            "Estimated seconds of work admitted and not yet answered (503 beyond FER_MAX_EXPECTED_WAIT_S)",
            registry=self.registry,
        )
        self.decode_pixels = Gauge(
            "fer_decode_budget_pixels_held",
            "Pixels being decoded and searched for faces now (FER_DECODE_BUDGET_PIXELS)",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
