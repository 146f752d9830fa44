"""Which store answers a public read, and what log position the answer reflects (docs/protocol.md 8.2).

ASGI middleware over a `ledger.replicas.ReadRouter` (`create_app(..., read_router=...)`; `tagledger serve
--read-db URL`). For every **public read** — `GET`/`HEAD` without `Authorization`, outside the paths a writing
client reads before it signs (`api.read_limit.EXEMPT`: stream heads, organisations, the ledger's parameters, the
phone app, probes, the API's docs) — it:

1. reads the client's freshness demand, `?min_seq=N` or `X-Min-Seq: N` (the answer must reflect entry #N, e.g. the
   client's own write): a malformed one is 400 `request.invalid`;
2. chooses a replica in the rotation that is known to hold entry #N (any, without `min_seq`), else the primary;
   from the primary, a `min_seq` the probes have not yet seen there is checked against the primary's log size,
   read then: beyond it, 400 `log.range`; the primary unreachable, 503 `read.stale` with `Retry-After`;
3. hands the chosen store's `Ledger` to the route (`reading(request)`), and adds `X-Log-Size` (the answer reflects
   at least the log's first N entries) and `X-Read-From` (`primary` or `replica:<n>`) to the answer;
4. if a replica answers 503 or fails before answering, takes it out of the rotation and serves the read again from
   the primary (a read writes nothing, so it can be made again); the client never sees the replica's failure.

Everything else (writes, signed reads of sealed details and evidence, the reads a client signs with) goes to the
primary untouched, and never carries these headers.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from api.i18n import Messages, negotiate
from api.parameters import CONTROL_CHARACTER
from api.problems import problem
from api.read_limit import EXEMPT
from ledger.replicas import Backend, ReadRouter
from ledger.service import Ledger

log = logging.getLogger("tagledger.api.read_routing")

LEDGER_KEY = "tagledger.ledger"
"""The scope key under which the chosen store's `Ledger` is handed to the route."""
MIN_SEQ_PARAM = "min_seq"
MIN_SEQ_HEADER = b"x-min-seq"
LOG_SIZE_HEADER = b"x-log-size"
READ_FROM_HEADER = b"x-read-from"
MAX_MIN_SEQ = 2**63 - 1
RETRY_AFTER_SECONDS = 1


MIN_SEQ_OPENAPI = {
    "name": MIN_SEQ_PARAM, "in": "query", "required": False,
    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_MIN_SEQ},
    "description": "Read-your-writes (protocol 8.2): answer from a store that holds log entry #min_seq (e.g. the "
                   "`seq` of your own write), or 503 `read.stale` with `Retry-After`; 400 `log.range` if the log "
                   "does not hold it. Also as the header `X-Min-Seq`. Every answer says `X-Log-Size`: it reflects at "
                   "least that many entries. A signed read (`Authorization`) is always answered by the primary.",
}


def reading(request: Request) -> Ledger:
    """The `Ledger` a public read route reads from: the store `ReadRouting` chose, else the primary."""
    chosen = request.scope.get(LEDGER_KEY)
    return chosen if chosen is not None else request.app.state.ledger


def routed(scope: dict[str, Any]) -> bool:
    """A public read: GET or HEAD, not an exempt path, and not a signed read (`Authorization`)."""
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or scope["path"].startswith(EXEMPT):
        return False
    return not any(name == b"authorization" for name, _ in scope.get("headers", ()))


class BadMinSeq(ValueError):
    pass


def min_seq_of(scope: dict[str, Any]) -> int | None:
    """The largest `min_seq` the request names (query parameter and header), None if none; `BadMinSeq` if one is
    not a decimal integer from 0 to 2^63 - 1."""
    from urllib.parse import parse_qsl

    query = scope.get("query_string", b"")
    named = b"min_seq" in query or b"%" in query  # else no parameter can be named min_seq (issue 13: most reads)
    texts = [v for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if k == MIN_SEQ_PARAM] \
        if named else []
    texts += [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == MIN_SEQ_HEADER]
    if not texts:
        return None
    values = []
    for text in texts:
        if (found := CONTROL_CHARACTER.search(text)) is not None:  # as every other parameter (api/parameters.py)
            raise BadMinSeq(f"the parameter {MIN_SEQ_PARAM} contains the control character U+{ord(found.group()):04X}; "
                            "no parameter may contain one")
        text = text.strip(" ")
        if not (text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_MIN_SEQ):
            raise BadMinSeq(f"min_seq must be a log position (a decimal integer from 0 to {MAX_MIN_SEQ}), not "
                            f"{text[:40]!r}")
        values.append(int(text))
    return max(values)


class ReadRouting:
    """`app.add_middleware(ReadRouting, router=ReadRouter(ledger, urls))` (see the module's docstring)."""

    def __init__(self, app: Any, *, router: ReadRouter):
        self.app = app
        self.router = router

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not routed(scope):
            await self.app(scope, receive, send)
            return
        try:
            min_seq = min_seq_of(scope)
        except BadMinSeq as bad:
            await _answer(scope, receive, send, 400, "request.invalid", str(bad), field="/min_seq")
            return
        router = self.router
        router.probe_soon()
        backend = router.choose(min_seq)
        if not backend.is_primary:
            if await self._serve(scope, receive, send, backend, router.known_size(backend), replica=True):
                return
            backend = router.primary  # the replica failed this read: it is out, and the primary serves it
        size = router.known_size(backend)
        if min_seq is not None and size <= min_seq:
            try:
                if router.primary_down():  # the probes keep trying it; this read need not wait for it to fail
                    raise ConnectionError(router.primary.reason)
                size = await run_in_threadpool(router.primary_size)
            except Exception as error:  # noqa: BLE001 - no store can show it now: say so, never answer stale
                if not isinstance(error, ConnectionError):
                    log.warning("min_seq %d: the primary did not answer: %s", min_seq, error)
                await _answer(scope, receive, send, 503, "read.stale",
                              f"no store this server reads from can show entry #{min_seq} now (the primary did not "
                              "answer, and no replica holds it yet); retry in a moment", retry_after=True)
                return
            if size <= min_seq:
                await _answer(scope, receive, send, 400, "log.range",
                              f"entry #{min_seq} is not in the log, which holds {size} entries", field="/min_seq",
                              log_size=size)
                return
        await self._serve(scope, receive, send, backend, size, replica=False)

    async def _serve(self, scope: dict[str, Any], receive: Any, send: Any, backend: Backend, size: int, *,
                     replica: bool) -> bool:
        """Run the route on `backend`. From a replica, a 503 or an error before the answer started is held back:
        the replica is taken out and False returned (nothing was sent)."""
        ledger = backend.ledger
        if ledger is None:  # taken out (and closed) between the choice and now
            return False
        # Vary: a shared cache must not answer a request with X-Min-Seq from an answer made without it
        extra = [(LOG_SIZE_HEADER, str(size).encode()), (READ_FROM_HEADER, backend.name.encode()),
                 (b"vary", b"X-Min-Seq")]
        started = held = False

        async def relay(message: dict[str, Any]) -> None:
            nonlocal started, held
            if message["type"] == "http.response.start":
                if replica and message["status"] == 503:
                    held = True
                    return
                started = True
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            elif held:
                return
            await send(message)

        scope[LEDGER_KEY] = ledger  # in place: the outer middleware (metrics) reads what the router adds (`route`)
        try:
            await self.app(scope, _replayable(receive), relay)
        except Exception as error:
            if not replica or started:
                raise
            self.router.failed(backend, f"{type(error).__name__}: {error}")
            return False
        if held:
            self.router.failed(backend, "a read from it was answered 503 (the store failed)")
            return False
        self.router.served(backend)
        return True


def _replayable(receive: Any) -> Any:
    """`receive` for a read that may be run twice: the (empty) request body first, then the real messages."""
    given = False

    async def again() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await receive()

    return again


async def _answer(scope: dict[str, Any], receive: Any, send: Any, status: int, rule: str, detail: str, *,
                  field: str | None = None, retry_after: bool = False, **extra: Any) -> None:
    """problem+json, or for the verification page (`/t/...`, which always answers people in HTML) a short page."""
    path = scope["path"]
    if path == "/t" or path.startswith("/t/"):
        from api.routes_page import CACHE_ERROR, _html  # the page's own look and language

        request = Request(scope, receive)
        t = Messages(negotiate(request.headers.get("accept-language"), request.query_params.get("lang")))
        if status == 503:
            response = _html(request, 503, "message.html", t, "no-store", tone="warn", mark="!",
                             title=t("unavailable_title"), detail=t("unavailable_detail"), tag=None, label=None)
        else:
            response = _html(request, status, "message.html", t, CACHE_ERROR, tone="bad", mark="✕",
                             title=t("bad_query_title"), detail=t("bad_query", detail=MIN_SEQ_PARAM), tag=None,
                             label=None)
    else:
        response = problem(status, rule, detail, field=field, **extra)
    if retry_after:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response.headers["Cache-Control"] = "no-store"
    await response(scope, receive, send)
