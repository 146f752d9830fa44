"""Bounded public reads: a burst of verification never stops custody recording (docs/protocol.md 8.1).

A Python process has one GIL, and a tag view is a few dozen round trips to the store, each of which gives the
GIL away and waits to get it back. Every public read in flight (a tag view, a page, a proof) is a thread
wanting it, and the writer thread waits its turn behind all of them: with 50 readers a 120-envelope batch took
40 s. So, per HTTP worker process:

- at most `SLOTS` public reads run at once; while the writer is recording (it has envelopes, or had some
  less than `WRITING_HOLD_SECONDS` ago: batches come one after the other), only `SLOTS_WHILE_WRITING`, and
  reads then fill at most `SHARE_WHILE_WRITING` of the time (after a read of d seconds the next one starts
  d * (1/share - 1) seconds later): writes come first;
- a few more reads (`QUEUE`) may wait up to `WAIT_SECONDS` for their turn; any other is answered at once with
  503 `read.busy` and `Retry-After`, rather than queued without bound.

Writes never wait here, nor do the reads a writing client needs to sign (`EXEMPT`: stream heads,
organisations, the ledger's parameters) or a load balancer's probes.

`ReadLimit` is ASGI middleware: `app.add_middleware(ReadLimit, writer_idle=ledger.writer.idle_seconds)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from api.i18n import Messages, negotiate
from api.problems import MEDIA_TYPE, PROBLEM_TYPE_BASE

SLOTS = int(os.environ.get("TAGLEDGER_READ_SLOTS", "4"))
"""Public reads running at once per worker process while it is not writing ($TAGLEDGER_READ_SLOTS)."""
SLOTS_WHILE_WRITING = int(os.environ.get("TAGLEDGER_READ_SLOTS_WHILE_WRITING", "1"))
"""... while its writer has envelopes to record ($TAGLEDGER_READ_SLOTS_WHILE_WRITING)."""
SHARE_WHILE_WRITING = float(os.environ.get("TAGLEDGER_READ_SHARE_WHILE_WRITING", "0.25"))
"""The fraction of the time reads may run while the writer has envelopes ($TAGLEDGER_READ_SHARE_WHILE_WRITING)."""
WRITING_HOLD_SECONDS = 0.25
"""The writer counts as recording for this long after its last batch."""
QUEUE = int(os.environ.get("TAGLEDGER_READ_QUEUE", "16"))
"""Public reads that may wait for their turn ($TAGLEDGER_READ_QUEUE); beyond this, 503 at once."""
WAIT_SECONDS = 1.0
"""How long a read may wait for its turn before it is answered 503."""
RETRY_AFTER_SECONDS = 1

EXEMPT = ("/v1/events", "/v1/streams/", "/v1/orgs", "/v1/ledger", "/healthz", "/readyz", "/metrics",
          "/openapi.json", "/docs", "/redoc", "/app/")
"""Path prefixes never limited: writes, what a writing client reads before signing (the phone app's own files
included: the people who record custody must be able to open it during a burst of public reads), probes, the
API's docs."""


class ReadLimit:
    """`writer_idle()`: seconds since the process's writer last had envelopes, 0 if it has some now
    (`LedgerWriter.idle_seconds`)."""

    def __init__(self, app: Any, *, writer_idle: Callable[[], float] = lambda: float("inf"), slots: int = SLOTS,
                 slots_while_writing: int = SLOTS_WHILE_WRITING, share_while_writing: float = SHARE_WHILE_WRITING,
                 queue: int = QUEUE, wait_seconds: float = WAIT_SECONDS):
        self.app = app
        self.writer_idle = writer_idle
        self.slots = max(1, slots)
        self.slots_while_writing = max(1, min(slots_while_writing, self.slots))
        self.share_while_writing = min(1.0, max(0.05, share_while_writing))
        self.queue = queue
        self.wait_seconds = wait_seconds
        self.running = 0
        self._pause_until = 0.0  # while writing, no read starts before this (event loop time)
        self._timer: asyncio.TimerHandle | None = None
        self._waiting: deque[asyncio.Future[None]] = deque()
        self.turned_away = 0
        """Reads answered 503 so far."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not _limited(scope):
            await self.app(scope, receive, send)
            return
        if not await self._enter():
            self.turned_away += 1
            await _busy(scope, send)
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await self.app(scope, receive, send)
        finally:
            now = loop.time()
            if self.writing() and self.share_while_writing < 1.0:
                pause = (now - started) * (1 / self.share_while_writing - 1)
                self._pause_until = max(self._pause_until, now + pause)
            self.running -= 1
            self._admit()

    def writing(self) -> bool:
        return self.writer_idle() < WRITING_HOLD_SECONDS

    def _may_start(self) -> bool:
        if not self.writing():
            return self.running < self.slots
        return (self.running < self.slots_while_writing
                and asyncio.get_running_loop().time() >= self._pause_until)

    async def _enter(self) -> bool:
        """Start now, or wait for a turn in the short queue if there is room; False: turn the read away."""
        if not self._waiting and self._may_start():
            self.running += 1
            return True
        if len(self._waiting) >= self.queue:
            return False
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        self._wake_after_pause()
        try:
            await asyncio.wait_for(turn, self.wait_seconds)  # `_admit` counted it as running
            return True
        except asyncio.TimeoutError:
            return False
        except asyncio.CancelledError:  # the client went away: a turn handed over meanwhile is handed on
            if turn.done() and not turn.cancelled():
                self.running -= 1
                self._admit()
            raise
        finally:
            if not turn.done() or turn.cancelled():
                with contextlib.suppress(ValueError):
                    self._waiting.remove(turn)

    def _admit(self) -> None:
        """Hand turns to the reads waiting longest, as far as `_may_start` allows."""
        while self._waiting and self._may_start():
            turn = self._waiting.popleft()
            if turn.done():  # gave up waiting
                continue
            self.running += 1
            turn.set_result(None)
        self._wake_after_pause()

    def _wake_after_pause(self) -> None:
        """Reads are waiting only for the pause to end (or for the writer to go idle): look again then."""
        if not self._waiting or (self._timer is not None and not self._timer.cancelled()):
            return
        loop = asyncio.get_running_loop()

        def again() -> None:
            self._timer = None
            self._admit()

        self._timer = loop.call_at(max(self._pause_until, loop.time() + 0.01), again)

def _limited(scope: dict[str, Any]) -> bool:
    return (scope["type"] == "http" and scope["method"] in ("GET", "HEAD")
            and not scope["path"].startswith(EXEMPT))


_PROBLEM = json.dumps({
    "type": PROBLEM_TYPE_BASE + "read.busy", "title": "Busy", "status": 503, "rule": "read.busy",
    "detail": "too many verifications are being served right now; retry in a moment (recording custody is not "
              "affected)",
}).encode()


def _page(scope: dict[str, Any]) -> tuple[bytes, bytes]:
    """The verification page (`/t/...`) answers people in HTML, in their language (protocol 15)."""
    headers = {k.lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    lang = negotiate(headers.get(b"accept-language"), (query.get("lang") or [None])[0])
    t = Messages(lang)
    body = (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{t("unavailable_title")}</title></head><body><h1>{t("unavailable_title")}</h1>'
            f'<p>{t("unavailable_detail")}</p></body></html>')
    return body.encode(), b"text/html; charset=utf-8"


async def _busy(scope: dict[str, Any], send: Any) -> None:
    path = scope["path"]
    body, media = _page(scope) if path == "/t" or path.startswith("/t/") else (_PROBLEM, MEDIA_TYPE.encode())
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", media), (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})
