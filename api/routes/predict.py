"""/v1/predict, /v1/predict/batch and /v1/model."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from starlette.requests import ClientDisconnect

from api.dependencies import ServiceDep, SettingsDep, require_api_key
from api.errors import ApiError
from api.schemas import BatchResponse, ErrorBody, PredictResponse, ServedModel
from api.service import InferenceService, with_deadline
from api.settings import DetectorName, Settings, TtaMode
from api.uploads import Upload, read_uploads
from fer.options import DETECTORS

T = TypeVar("T")

router = APIRouter(prefix="/v1", tags=["prediction"], dependencies=[Depends(require_api_key)])


def _errors(*statuses: int) -> dict:
    meanings = {
        400: "not an image, a damaged image, malformed multipart, JSON or base64",
        401: "FER_API_KEY is set and the request did not carry it",
        408: "the body did not arrive whole within FER_BODY_TIMEOUT_S of the headers",
        413: "body over the size limit, an image over the pixel limit, or one too complex to decode",
        415: "an image format other than JPEG, PNG, WEBP or BMP, or a body that is neither multipart nor JSON",
        422: "a missing field or a bad parameter",
        431: "more than 100 header fields, or more than 32 KB of them",
        503: "the server is at capacity or shutting down; retry after Retry-After seconds",
        504: "the request was not answered within the server's deadline",
    }
    return {status: {"model": ErrorBody, "description": meanings[status]} for status in statuses}


ALL_ERRORS = _errors(400, 401, 408, 413, 415, 422, 431, 503, 504)

_BASE64_JPEG = "/9j/4AAQSkZJRgABAQAAAQABAAD..."
PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary", "description": "the image"}},
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "description": "the image file, base64-encoded"}},
                },
                "example": {"image": _BASE64_JPEG},
            },
        },
    }
}
BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["images"],
                    "properties": {"images": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
                },
                "example": {"images": [_BASE64_JPEG, _BASE64_JPEG]},
            },
        },
    }
}

DetectQuery = Annotated[bool, Query(description="find faces; false: the whole image is one face crop")]
DetectorQuery = Annotated[
    DetectorName | None,
    Query(description="face detector for this request: " + ", ".join(DETECTORS) + "; default: the server's"),
]
TtaQuery = Annotated[
    TtaMode | None, Query(description="test-time augmentation: none, flip or tencrop; default: the server's")
]


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ALL_ERRORS,
    openapi_extra=PREDICT_BODY,
    summary="Emotions of every face in one image",
)
async def predict(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    detect: DetectQuery = True,
    tta: TtaQuery = None,
    detector: DetectorQuery = None,
) -> dict:
    """Send the image as multipart field `file` (`curl -F file=@photo.jpg`) or as JSON
    `{"image": "<base64>"}`. Faces come largest first; an image without faces gives an empty list."""

    started = time.perf_counter()
    uploads = await _read_uploads(request, "file", "image", max_images=1)
    if len(uploads) > 1:
        raise ApiError(422, "invalid_request", "send one image here; use /v1/predict/batch for several")
    # A bad image gets its 4xx now, before it waits for capacity: its header is all it takes.
    pixels = [uploads[0].pixels(settings.max_pixels)]
    result = await _admitted(
        service, settings, pixels, detect, tta, lambda: service.predict(uploads[0].content(), detect, tta, detector)
    )
    return {**result, "model": service.model_id, "elapsed_ms": _elapsed_ms(started)}


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    response_model_exclude_none=True,
    responses=ALL_ERRORS,
    openapi_extra=BATCH_BODY,
    summary="Emotions of the faces in several images",
)
async def predict_batch(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    detect: DetectQuery = True,
    tta: TtaQuery = None,
    detector: DetectorQuery = None,
) -> dict:
    """Send images as repeated multipart field `files` or JSON `{"images": ["<base64>", ...]}`.
    `results` follow upload order; a bad image gets an `error` of its own and the others still count."""

    async def one(upload: Upload) -> dict:
        try:
            return await service.predict(upload.content(), detect, tta, detector)
        except ApiError as error:
            service.metrics.rejections.labels(error.code).inc()
            return error.body()

    started = time.perf_counter()
    uploads = await _read_uploads(request, "files", "images", settings.max_batch_images)
    if len(uploads) > settings.max_batch_images:
        raise ApiError(413, "too_many_images", f"{len(uploads)} images; this server takes {settings.max_batch_images}")
    work = lambda: asyncio.gather(*(one(upload) for upload in uploads))  # noqa: E731
    pixels = [upload.declared_pixels(settings.max_pixels) for upload in uploads]
    results = await _admitted(service, settings, pixels, detect, tta, work)
    return {"results": results, "model": service.model_id, "elapsed_ms": _elapsed_ms(started)}


async def _admitted(
    service: InferenceService,
    settings: Settings,
    pixels: list[int],
    detect: bool,
    tta: str | None,
    work: Callable[[], Awaitable[T]],
) -> T:
    """Run `work` in an admission slot (503 at once when the server cannot take it) and within the
    deadline (504); 413 first when the images' `pixels` (from their headers) add up to more than a
    request may have."""
    if sum(pixels) > settings.max_request_pixels:
        message = (
            f"the images total {sum(pixels):,} pixels; this server takes {settings.max_request_pixels:,} per request"
        )
        raise ApiError(413, "too_many_pixels", message)
    with service.admit(pixels, detect, tta):
        return await with_deadline(settings.request_timeout_s, work())


async def _read_uploads(request: Request, file_field: str, json_field: str, max_images: int) -> list[Upload]:
    # Read before admission: a slow uploader then holds part of the upload budget (BodyIntake, which
    # also cuts it off at its body deadline) and never one of the inference slots.
    try:
        # Into one buffer, not request.body(): that keeps the chunks and their joined copy (2x the body
        # at once) and caches the body on the request until it is answered.
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
    except ClientDisconnect:
        # The client went away mid-upload: nobody reads the answer, and it is no server failure. 499 is
        # nginx's "client closed request", so that metrics tell it apart from errors.
        message = "the client closed the connection before sending the whole body"
        raise ApiError(499, "client_disconnected", message) from None
    return read_uploads(body, request.headers.get("content-type", ""), file_field, json_field, max_images)


@router.get("/model", response_model=ServedModel, responses=_errors(401, 503), summary="The model being served")
async def model(service: ServiceDep) -> dict:
    """Architecture, labels, input, validation metrics and the fer version."""
    return service.model_card()


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
