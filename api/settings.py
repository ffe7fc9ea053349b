"""Service settings, read from FER_* environment variables (for example FER_MAX_BATCH_SIZE=32).

`fer serve` turns its flags into these variables, so that every worker process reads the same values.
"""

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fer.options import BACKENDS, DEFAULT_DETECTOR, DETECTORS, DEVICE_CHOICES, TTA_MODES

DeviceName = Literal[DEVICE_CHOICES]  # type: ignore[valid-type]
TtaMode = Literal[TTA_MODES]  # type: ignore[valid-type]
BackendName = Literal[BACKENDS]  # type: ignore[valid-type]
DetectorName = Literal[DETECTORS]  # type: ignore[valid-type]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FER_", frozen=True)

    # Model
    weights: str | None = None  # .safetensors (with its .json card) or checkpoint; None: shipped weights
    device: DeviceName = "auto"  # auto: CUDA, then MPS, then CPU
    tta: TtaMode | None = None  # default test-time augmentation; None: the one the model card chose
    backend: BackendName = "auto"  # CPU engine: auto picks int8, else float32 ONNX, else torch (fer.predictor)
    detector: DetectorName = DEFAULT_DETECTOR  # face detector (fer.detection.registry)

    # Dynamic batching: faces of concurrent requests share one forward pass.
    max_batch_size: int = Field(64, ge=1)  # faces per forward pass
    max_wait_ms: float = Field(5.0, ge=0)  # how long the first face waits for others to join it
    # Face detection of concurrent requests' photos in one run (api/gathering.py): auto, when MTCNN
    # runs on a GPU; on, off.
    gather_detection: Literal["auto", "on", "off"] = "auto"

    # Admission and deadlines
    max_queue: int = Field(128, ge=1)  # requests admitted at once; more get 503 with Retry-After
    request_timeout_s: float = Field(10.0, gt=0)  # a request not answered by then gets 504
    # 503 at once when the work already admitted (measured service times, api/admission.py) would keep
    # a new request waiting longer than this; below request_timeout_s, so that overload gives 503s, not 504s.
    max_expected_wait_s: float = Field(5.0, gt=0)
    retry_after_s: int = Field(1, ge=0)  # the Retry-After header sent with 503
    # A connection's request headers must all arrive within this (api/protocol.py); slowloris guard.
    header_timeout_s: float = Field(10.0, gt=0)
    # SIGTERM: readiness turns 503 at once, but the port stays open this long before uvicorn's graceful
    # shutdown closes it, for a load balancer that learns of the drain from its readiness checks
    # (HAProxy: about inter x fall). Closing at once reset the connections the kernel had already
    # accepted for the app, with a request on them (bench/load_balancer.py). Kubernetes needs none:
    # its preStop hook waits before SIGTERM is sent (deploy/kubernetes/api/deployment.yaml).
    drain_delay_s: float = Field(0.0, ge=0, le=60)

    # Input limits
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1)  # whole request body; 413 beyond
    # Request bodies held at once across all requests (api/middleware.py BodyIntake); 503 beyond. Parsing
    # a JSON body takes about twice its size again, so uploads use at most about 3x this much memory.
    upload_budget_bytes: int = Field(64 * 1024 * 1024, ge=1)
    body_timeout_s: float = Field(10.0, gt=0)  # a body not received whole this long after its headers: 408
    max_pixels: int = Field(25_000_000, ge=1)  # width x height of one image, checked before decoding
    # All images of one request together (a batch of 16 one-colour 5000x5000 PNGs is 3.2 MB and 400 MP:
    # more than 10 s of decoding on 2 cores); 413 beyond.
    max_request_pixels: int = Field(100_000_000, ge=1)
    # Pixels decoded and searched for faces at once, across all requests (api/budgets.py); about 10
    # bytes each at the peak. More wait their turn (within the request deadline).
    decode_budget_pixels: int = Field(25_000_000, ge=1)
    max_faces: int = Field(32, ge=1)  # faces classified per image; the largest are kept
    max_batch_images: int = Field(16, ge=1)  # images in one /v1/predict/batch request

    # Access: when set, /v1/* needs "Authorization: Bearer <key>" or "X-API-Key: <key>". An empty key
    # is refused at start: no client can send it, so every /v1 call would get 401.
    api_key: SecretStr | None = None

    # /metrics is open by default (scrapers often sit inside the network); true: it needs api_key too.
    metrics_need_key: bool = False

    @field_validator("api_key")
    @classmethod
    def _key_is_not_empty(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and not key.get_secret_value():
            raise ValueError("set but empty; unset it to serve without a key, or give a key")
        return key
