"""Liveness, readiness and metrics. These never touch the model or the batcher, so they answer at once
however busy inference is."""

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from api.dependencies import require_api_key_for_metrics
from api.schemas import Status

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Status, summary="Liveness: the process answers")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Status,
    responses={503: {"model": Status, "description": "loading, or draining before shutdown"}},
    summary="Readiness: the model is loaded and warm, and the server is not shutting down",
)
async def readyz(request: Request) -> JSONResponse:
    service = getattr(request.app.state, "service", None)
    if service is not None and service.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    if service is None or not service.ready:
        return JSONResponse({"status": "loading"}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    dependencies=[Depends(require_api_key_for_metrics)],
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"example": "fer_requests_total{route=...} 3.0"}}}},
)
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
