"""Typed dependencies shared by the routes."""

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from api.service import InferenceService
from api.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="the server's FER_API_KEY, when it has one")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same key, as a header")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_service(request: Request) -> InferenceService:
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise ApiError(503, "unavailable", "the model is not loaded yet; retry", {"Retry-After": "1"})
    return service


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[InferenceService, Depends(get_service)]


def require_api_key(
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_api_key_header)],
) -> None:
    """When FER_API_KEY is set, the request must carry it; compared in constant time."""
    if settings.api_key is None:
        return
    given = bearer.credentials if bearer is not None else header_key
    expected = settings.api_key.get_secret_value().encode()
    if given is None or not hmac.compare_digest(given.encode(), expected):
        raise ApiError(
            401,
            "unauthorized",
            "this server needs an API key: send Authorization: Bearer <key> or X-API-Key: <key>",
            {"WWW-Authenticate": "Bearer"},
        )


def require_api_key_for_metrics(
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_api_key_header)],
) -> None:
    """/metrics needs the key only with FER_METRICS_NEED_KEY=true (a Prometheus scrape job can send it
    as `authorization: {credentials: KEY}`); the probes never do."""
    if settings.metrics_need_key:
        require_api_key(settings, bearer, header_key)
