"""ASGI middleware: request-body intake (size, budget, deadline), request metrics and security headers.

Written as plain ASGI rather than BaseHTTPMiddleware so that the body intake can act on the byte
stream itself (a chunked body has no Content-Length to check) and nothing buffers a response.
"""

import asyncio
import time

from starlette.routing import Match, Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.budgets import UploadBudget
from api.errors import ApiError, error_response
from api.metrics import Metrics


class BodyIntake:
    """Every request body passes here, before any route reads it:

    - 413 for a body over `max_bytes`: at once when Content-Length declares it, else as soon as the
      streamed bytes pass it, so an oversized upload is never read whole;
    - 400 for a body framed two ways (Content-Length and Transfer-Encoding, or chunked under
      HTTP/1.0): the parser frames it by its chunks, so the declared length would say nothing about
      the bytes that follow (RFC 9112, 6.1 and 6.3; request smuggling behind a proxy). Never read;
    - 503 when the body would not fit the server-wide `budget`: a declared length that does not fit
      what is free now is refused before any byte is read; the budget itself holds the bytes
      received, as they arrive, so connections that send headers and then nothing hold none of it;
      all given back with the answer;
    - 408 when the whole body has not arrived `timeout_s` after the headers: a client that uploads
      slowly holds its budget that long at most, and never an inference slot (routes read the body
      before they ask for one)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, budget: UploadBudget, timeout_s: float, retry_after_s: int, metrics: Metrics
    ):
        self.app, self.max_bytes, self.budget, self.timeout_s = app, max_bytes, budget, timeout_s
        self.retry_after_s, self.metrics = retry_after_s, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        declared, chunked = headers.get(b"content-length"), b"transfer-encoding" in headers
        if chunked and (declared is not None or scope["http_version"] == "1.0"):
            return await self._reject(self._framed_two_ways(declared is not None), scope, receive, send)
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._reject(self._too_large(), scope, receive, send)
        if declared is not None and int(declared) > self.budget.free:
            return await self._reject(self._budget_full(), scope, receive, send)

        deadline = asyncio.get_running_loop().time() + self.timeout_s
        received = reserved = 0  # reserved: bytes of the budget this request holds, all it received
        body_complete = declared == b"0" or scope["method"] in ("GET", "HEAD")
        response_started = False

        async def guarded_receive() -> Message:
            nonlocal received, reserved, body_complete
            if body_complete:  # later calls only wait for a disconnect: no deadline then
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except asyncio.TimeoutError:
                raise self._too_slow() from None  # the route's error handler turns these into answers
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise self._too_large()
                if received > reserved:
                    if not self.budget.take(received - reserved):
                        raise self._budget_full()
                    reserved = received
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except ApiError as error:  # raised where no route handled it (for example a body sent to a 404)
            if response_started:
                raise
            await self._reject(error, scope, receive, send)
        finally:
            self.budget.give_back(reserved)

    def _too_large(self) -> ApiError:
        return ApiError(413, "body_too_large", f"the request body is over {self.max_bytes:,} bytes")

    def _framed_two_ways(self, with_length: bool) -> ApiError:
        why = "both Content-Length and Transfer-Encoding" if with_length else "Transfer-Encoding under HTTP/1.0"
        return ApiError(400, "ambiguous_framing", f"the request body is framed by {why}; send one of them")

    def _too_slow(self) -> ApiError:
        return ApiError(408, "body_timeout", f"the request body did not arrive within {self.timeout_s:g} s")

    def _budget_full(self) -> ApiError:
        message = "the server is receiving as many uploads as its memory budget allows; retry after a moment"
        return ApiError(503, "upload_budget_full", message, {"Retry-After": str(self.retry_after_s)})

    async def _reject(self, error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
        self.metrics.rejections.labels(error.code).inc()
        response = error_response(error)
        if error.status in (400, 413):
            response.headers["Connection"] = "close"  # a body over the limit or framed two ways is never read
        # Otherwise (503: the budget is full) uvicorn reads the rest of the body and drops it, so that the
        # client, still sending, then reads this answer instead of a reset connection; `fer serve`'s
        # header deadline bounds how long that may take.
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
