"""ASGI middleware: body-size limit, request metrics and security headers.

Written as plain ASGI rather than BaseHTTPMiddleware so that the size limit can act on the byte
stream itself (a chunked body has no Content-Length to check) and nothing buffers a response.
"""

import time

from starlette.routing import Match, Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, error_response
from api.metrics import Metrics


class BodySizeLimit:
    """413 for a body over `max_bytes`: at once when Content-Length declares it, else as soon as the
    streamed bytes pass the limit, so an oversized upload is never read whole."""

    def __init__(self, app: ASGIApp, max_bytes: int, metrics: Metrics):
        self.app, self.max_bytes, self.metrics = app, max_bytes, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._reject(self._too_large(), scope, receive, send)

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # The route's error handler turns this into the 413 answer.
                    raise self._too_large()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except ApiError as error:  # raised where no route handled it (for example a body sent to a 404)
            if response_started:
                raise
            await self._reject(error, scope, receive, send)

    def _too_large(self) -> ApiError:
        return ApiError(413, "body_too_large", f"the request body is over {self.max_bytes:,} bytes")

    async def _reject(self, error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
        self.metrics.rejections.labels(error.code).inc()
        response = error_response(error)
        response.headers["Connection"] = "close"  # the rest of the body is never read
        await response(scope, receive, send)


class RequestMetrics:
    """Counts requests by route template (never the raw path, which would let clients create series).

    FastAPI names the route in the scope for its own API routes only; the routes it adds itself (/docs,
    /openapi.json) and mounts (/static) are found here by matching the path against `router`'s routes."""

    def __init__(self, app: ASGIApp, metrics: Metrics, router: Router):
        self.app, self.metrics, self.router = app, metrics, router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500
        as_received = {"path": scope["path"], "root_path": scope.get("root_path", "")}  # a mount rewrites them

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or self._route_template({**scope, **as_received})
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)

    def _route_template(self, scope: Scope) -> str:
        """Only for requests no API route took: the API's own hot path is never matched twice."""
        for route in self.router.routes:
            if not isinstance(route, (Route, Mount)):  # FastAPI's included routers: their API routes name themselves
                continue
            match, _ = route.matches(scope)
            if match is not Match.NONE:  # PARTIAL: the path matches, the method does not (405)
                return route.path
        return "unmatched"


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
# The page loads only its own script and style; uploads are shown from blob: URLs, the webcam from a stream.
PAGE_POLICY = (
    b"default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
    b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += SECURITY_HEADERS
                if not scope["path"].startswith("/docs"):  # Swagger UI needs inline script
                    headers.append((b"content-security-policy", PAGE_POLICY))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
