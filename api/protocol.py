"""uvicorn's HTTP/1.1 protocol with a deadline for request headers.

uvicorn closes a keep-alive connection that stays idle between requests (`timeout_keep_alive`, 5 s),
but it waits forever for the first request's headers, and for headers sent a byte at a time: a client
that opens sockets and stays silent, or trickles headers (slowloris), holds them as long as it likes.
Here every request's headers must arrive within `header_timeout_s` (FER_HEADER_TIMEOUT_S) of their
first byte, or of the connection's opening; otherwise the connection is closed without an answer, as
nginx's `client_header_timeout` does. The body is not covered: a request being read is the app's.
"""

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from api.settings import Settings

DEFAULT_HEADER_TIMEOUT_S = Settings.model_fields["header_timeout_s"].default


class HeaderTimeoutH11Protocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read here, not passed in: uvicorn builds the protocol itself, in each worker process.
        self.header_timeout_s = float(os.environ.get("FER_HEADER_TIMEOUT_S", DEFAULT_HEADER_TIMEOUT_S))
        self.header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        if self.header_deadline is None and not self._request_in_progress():
            self._await_headers()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)
        if self._request_in_progress():
            self._headers_arrived()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_arrived()
        super().connection_lost(exc)

    def _request_in_progress(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _await_headers(self) -> None:
        self.header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _headers_arrived(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _headers_too_slow(self) -> None:
        self.header_deadline = None
        if not self._request_in_progress():
            self.timeout_keep_alive_handler()  # uvicorn's own way of closing an idle connection
