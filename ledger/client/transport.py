"""How a client reaches a ledger: over HTTP (`HttpTransport`) or in-process (`LocalTransport`).

Both answer the same questions: submit an envelope (or many), what is the head of a stream, show me a tag; and
both upload an incident's sealed details (`put_details`, protocol 16.2).
A refusal comes back as `LedgerError` carrying the RFC 9457 problem document. When the answer is not definite
(503, no answer) both send the same envelope again, a bounded number of times (`ledger.client.retry`).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from domain.errors import RuleViolation
from ledger.client.retry import RESUBMIT_STATUSES, RetryPolicy
from ledger.write_outcomes import RETRY_AFTER_SECONDS, StorageFailure

JSON = {"content-type": "application/json"}

if TYPE_CHECKING:
    from ledger.service import Ledger


class LedgerError(Exception):
    def __init__(self, status: int, problem: dict[str, Any]):
        super().__init__(f"{status} {problem.get('rule', '')}: {problem.get('detail', problem)}")
        self.status = status
        self.problem = problem

    @property
    def rule(self) -> str | None:
        return self.problem.get("rule")


class Transport(ABC):
    @abstractmethod
    def submit(self, envelope: dict[str, Any]) -> dict[str, Any]: ...

    def submit_batch(self, envelopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Submit envelopes in order; for each, `{"status", "receipt"}` or `{"status", "problem"}` (as the items
        of `POST /v1/events/batch`). Only items without a definite outcome are resubmitted (`retry`)."""
        results = []
        for envelope in envelopes:
            try:
                receipt = self.submit(envelope)
            except LedgerError as error:
                results.append({"status": error.status, "problem": error.problem})
            else:
                results.append({"status": 200 if receipt.get("duplicate") else 201, "receipt": receipt})
        return results

    @abstractmethod
    def head(self, stream: str) -> str | None: ...

    @abstractmethod
    def tag(self, tag_id: str) -> dict[str, Any] | None: ...

    def put_details(self, incident: str, details: dict[str, Any]) -> dict[str, Any]:
        """Upload an incident's sealed details (protocol 16.2): `{"incident", "details_sha256"}`."""
        raise NotImplementedError

    def put_evidence(self, incident: str, sha256: str, media_type: str, data: bytes) -> dict[str, Any]:
        """Upload an evidence file a signed event of the incident names (protocol 16.2, since 1.10)."""
        raise NotImplementedError


class HttpTransport(Transport):
    """Over HTTP. Every request is sent again, the same bytes, on 502/503/504, a connection error or a timeout,
    up to `retry.attempts` times (`ledger.client.retry`); an envelope is encoded once and never re-signed here.

    Read-your-writes (docs/protocol.md 8.2): the transport remembers the highest `seq` of the receipts it was given
    (`min_seq`) and sends it as `X-Min-Seq` with its public reads, so a ledger that reads from replicas answers
    them from a store that holds its own writes (or 503 `read.stale`, which is retried like any 503)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, client: httpx.Client | None = None,
                 retry: RetryPolicy = RetryPolicy(), sleep: Callable[[float], None] = time.sleep):
        self.http = client or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self.retry = retry
        self._sleep = sleep
        self.min_seq: int | None = None
        """The highest `seq` of a receipt this transport was given: its public reads reflect at least that."""

    def _saw(self, receipt: dict[str, Any]) -> dict[str, Any]:
        seq = receipt.get("seq")
        if isinstance(seq, int) and (self.min_seq is None or seq > self.min_seq):
            self.min_seq = seq
        return receipt

    def _fresh(self) -> dict[str, str]:
        return {} if self.min_seq is None else {"X-Min-Seq": str(self.min_seq)}

    def submit(self, envelope: dict[str, Any]) -> dict[str, Any]:
        response = self._send("POST", "/v1/events", "the event", content=_encode(envelope), headers=JSON)
        if response.status_code >= 400:
            raise LedgerError(response.status_code, _problem(response))
        return self._saw(response.json())

    def submit_batch(self, envelopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`POST /v1/events/batch` (up to 1,000 envelopes). Items answered 503 (and every item, when the whole
        request got no answer) are resubmitted, the same bytes, until each has a definite outcome or the
        attempts run out; the last answer of each item is returned."""
        raws = [_encode(e) for e in envelopes]
        results: list[dict[str, Any] | None] = [None] * len(raws)
        pending = list(range(len(raws)))
        for attempt in range(self.retry.attempts):
            retry_after = None
            try:
                response = self.http.post("/v1/events/batch", content=b"[" + b",".join(raws[i] for i in pending) + b"]",
                                          headers=JSON)
            except httpx.TransportError as exc:
                for i in pending:
                    results[i] = {"status": 503, "problem": _no_answer(self.http.base_url, attempt + 1, exc,
                                                                       "these events")}
            else:
                retry_after = response.headers.get("retry-after")
                if response.status_code in RESUBMIT_STATUSES:
                    for i in pending:
                        results[i] = {"status": response.status_code, "problem": _problem(response)}
                elif response.status_code >= 400:  # the request itself was refused (400, 413, 415)
                    raise LedgerError(response.status_code, _problem(response))
                else:
                    for i, item in zip(pending, response.json()["results"]):
                        results[i] = item
                        if isinstance(item.get("receipt"), dict):
                            self._saw(item["receipt"])
                    pending = [i for i in pending if results[i]["status"] in RESUBMIT_STATUSES]  # type: ignore[index]
            if not pending:
                break
            if attempt + 1 < self.retry.attempts:
                self._sleep(self.retry.delay(attempt, retry_after))
        return results  # type: ignore[return-value]

    def head(self, stream: str) -> str | None:
        response = self._send("GET", f"/v1/streams/{stream}/head", "the stream's head")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise LedgerError(response.status_code, _problem(response))
        return response.json()["hash"]

    def tag(self, tag_id: str) -> dict[str, Any] | None:
        response = self._send("GET", f"/v1/tags/{tag_id}", "the tag", headers=self._fresh())
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise LedgerError(response.status_code, _problem(response))
        return response.json()

    def put_details(self, incident: str, details: dict[str, Any]) -> dict[str, Any]:
        response = self._send("PUT", f"/v1/incidents/{incident}/details", "the details", json=details)
        if response.status_code >= 400:
            raise LedgerError(response.status_code, _problem(response))
        return response.json()

    def put_evidence(self, incident: str, sha256: str, media_type: str, data: bytes) -> dict[str, Any]:
        response = self._send("PUT", f"/v1/incidents/{incident}/evidence/{sha256}", "the evidence file",
                              content=data, headers={"content-type": media_type})
        if response.status_code >= 400:
            raise LedgerError(response.status_code, _problem(response))
        return response.json()

    def _send(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        """The request, sent again as it is while the answer is 502/503/504 or none; the last answer."""
        for attempt in range(self.retry.attempts):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt + 1 == self.retry.attempts:
                    raise LedgerError(503, _no_answer(self.http.base_url, attempt + 1, exc, what)) from None
                self._sleep(self.retry.delay(attempt))
                continue
            if response.status_code not in RESUBMIT_STATUSES or attempt + 1 == self.retry.attempts:
                return response
            self._sleep(self.retry.delay(attempt, response.headers.get("retry-after")))
        raise AssertionError("unreachable")


class LocalTransport(Transport):
    """Talks to a `Ledger` object in this process, through the same signed write path."""

    def __init__(self, ledger: Ledger, *, retry: RetryPolicy = RetryPolicy(),
                 sleep: Callable[[float], None] = time.sleep):
        self.ledger = ledger
        self.retry = retry
        self._sleep = sleep

    def submit(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """As over HTTP: the same envelope again when the store failed (`StorageFailure`), a few times."""
        for attempt in range(self.retry.attempts):
            try:
                return self.ledger.submit(envelope).to_json()
            except RuleViolation as violation:
                raise LedgerError(409 if violation.is_conflict else 422, {
                    "rule": violation.rule, "field": violation.field, "detail": violation.detail, **violation.extra,
                }) from None
            except StorageFailure as failure:
                if attempt + 1 == self.retry.attempts:
                    raise LedgerError(failure.status, {"rule": failure.rule, "detail": failure.detail}) from None
                self._sleep(self.retry.delay(attempt, str(RETRY_AFTER_SECONDS)))
        raise AssertionError("unreachable")

    def head(self, stream: str) -> str | None:
        head = self.ledger.head(stream)
        return head.hash if head else None

    def tag(self, tag_id: str) -> dict[str, Any] | None:
        from ledger.views import tag_document

        view = self.ledger.tag(tag_id)
        return None if view is None else tag_document(view, view.registry or self.ledger.registry())

    def put_details(self, incident: str, details: dict[str, Any]) -> dict[str, Any]:
        from ledger.service import DetailsRefused

        try:
            digest = self.ledger.put_sealed_details(incident, details)
        except DetailsRefused as refused:
            raise LedgerError(refused.status, {"rule": refused.rule, "detail": refused.detail, **refused.extra}) from None
        return {"incident": incident, "details_sha256": digest}

    def put_evidence(self, incident: str, sha256: str, media_type: str, data: bytes) -> dict[str, Any]:
        from ledger.service import DetailsRefused

        try:
            stored = self.ledger.put_sealed_evidence(incident, sha256, media_type, data)
        except DetailsRefused as refused:
            raise LedgerError(refused.status, {"rule": refused.rule, "detail": refused.detail, **refused.extra}) from None
        return {"incident": incident, "sha256": sha256, "media_type": media_type, "size": len(data), "stored": stored}


def _encode(envelope: dict[str, Any]) -> bytes:
    """The bytes sent for an envelope: encoded once, and sent again unchanged."""
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def _no_answer(base_url: Any, attempts: int, exc: Exception, what: str) -> dict[str, Any]:
    return {"rule": "transport.no_answer", "status": 503,
            "detail": f"no answer from {base_url} after {attempts} attempt(s) ({type(exc).__name__}: {exc}); "
                      f"{what} may or may not have been recorded: look before recording again"}


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        return response.json()
    except ValueError:
        return {"detail": response.text}
