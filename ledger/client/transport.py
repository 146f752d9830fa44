"""How a client reaches a ledger: over HTTP (`HttpTransport`) or in-process (`LocalTransport`).

Both answer the same questions: submit an envelope, what is the head of a stream, show me a tag; and both
upload an incident's sealed details (`put_details`, protocol 16.2).
A refusal comes back as `LedgerError` carrying the RFC 9457 problem document.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import httpx

from domain.errors import RuleViolation

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
    def __init__(self, base_url: str, *, timeout: float = 30.0, client: httpx.Client | None = None):
        self.http = client or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    def submit(self, envelope: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post("/v1/events", json=envelope)
        if response.status_code >= 400:
            raise LedgerError(response.status_code, _problem(response))
        return response.json()

    def head(self, stream: str) -> str | None:
        response = self.http.get(f"/v1/streams/{stream}/head")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise LedgerError(response.status_code, _problem(response))
        return response.json()["hash"]

    def tag(self, tag_id: str) -> dict[str, Any] | None:
        response = self.http.get(f"/v1/tags/{tag_id}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise LedgerError(response.status_code, _problem(response))
        return response.json()

    def put_details(self, incident: str, details: dict[str, Any]) -> dict[str, Any]:
        response = self.http.put(f"/v1/incidents/{incident}/details", json=details)
        if response.status_code >= 400:
            raise LedgerError(response.status_code, _problem(response))
        return response.json()

    def put_evidence(self, incident: str, sha256: str, media_type: str, data: bytes) -> dict[str, Any]:
        response = self.http.put(f"/v1/incidents/{incident}/evidence/{sha256}", content=data,
                                 headers={"content-type": media_type})
        if response.status_code >= 400:
            raise LedgerError(response.status_code, _problem(response))
        return response.json()


class LocalTransport(Transport):
    """Talks to a `Ledger` object in this process, through the same signed write path."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def submit(self, envelope: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.ledger.submit(envelope).to_json()
        except RuleViolation as violation:
            raise LedgerError(409 if violation.is_conflict else 422, {
                "rule": violation.rule, "field": violation.field, "detail": violation.detail, **violation.extra,
            }) from None

    def head(self, stream: str) -> str | None:
        head = self.ledger.head(stream)
        return head.hash if head else None

    def tag(self, tag_id: str) -> dict[str, Any] | None:
        from ledger.views import tag_document

        view = self.ledger.tag(tag_id)
        return None if view is None else tag_document(view, self.ledger.registry())

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


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        return response.json()
    except ValueError:
        return {"detail": response.text}
