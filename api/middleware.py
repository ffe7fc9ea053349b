"""ASGI middleware: request-body intake (size, budget, deadline), request metrics and security headers.

Written as plain ASGI rather than BaseHTTPMiddleware so that the body intake can act on the byte
stream itself (a chunked body has no Content-Length to check) and nothing buffers a response.
"""

import asyncio
import time

from starlette.routing import BaseRoute, Match, Mount, Route
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
        await reject_unread(error, self.metrics, scope, receive, send)


async def reject_unread(error: ApiError, metrics: Metrics, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer `error` to a request whose body the app never read, and count it."""
    metrics.rejections.labels(error.code).inc()
    response = error_response(error)
    if error.status in (400, 413, 431):
        response.headers["Connection"] = "close"  # a body over the limit or framed two ways is never read
    # Otherwise (503: the budget is full) uvicorn reads the rest of the body and drops it, so that the
    # client, still sending, then reads this answer instead of a reset connection; `fer serve`'s
    # header deadline bounds how long that may take.
    await response(scope, receive, send)


class HeaderLimits:
    """431 for a request of more than MAX_HEADER_FIELDS header fields or MAX_HEADER_BYTES of them in all.
    h11 bounds only a header block that arrives in pieces (16 KB buffered); one sent in a single write
    was parsed whatever its size (a 100 KB header, or 5,000 headers, were accepted). The limits are
    Apache's field count and nginx's total (4 buffers of 8 KB), which no browser or HTTP library reaches."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            if len(headers) > MAX_HEADER_FIELDS:
                why = f"{len(headers):,} header fields; at most {MAX_HEADER_FIELDS} are accepted"
                return await reject_unread(_headers_too_large(why), self.metrics, scope, receive, send)
            size = sum(len(name) + len(value) for name, value in headers)
            if size > MAX_HEADER_BYTES:
                why = f"{size:,} bytes of headers; at most {MAX_HEADER_BYTES:,} are accepted"
                return await reject_unread(_headers_too_large(why), self.metrics, scope, receive, send)
        await self.app(scope, receive, send)


MAX_HEADER_FIELDS = 100
MAX_HEADER_BYTES = 32 * 1024


def _headers_too_large(why: str) -> ApiError:
    return ApiError(431, "headers_too_large", f"the request has {why}")


class RequestMetrics:
    """Counts requests by route template (never the raw path, which would let clients create series).

    FastAPI names the route in the scope when one of its API routes ran. Every other request is matched
    here against `routes`: the routes FastAPI adds itself (/docs, /openapi.json), mounts (/static), and
    the API routes again for requests refused before routing (BodyIntake: 413, 408, 503). The API routes
    are given from their routers, since the app holds them wrapped in included-router objects whose
    matches() do not say which route matched."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: list[BaseRoute]):
        self.app, self.metrics, self.routes = app, metrics, routes

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
        for route in self.routes:
            if not isinstance(route, (Route, Mount)):  # the included-router wrappers
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
