"""The operator's side of signed QR labels (docs/protocol.md section 13): sign each tag id locally with the
operator's own key, upload the signatures (`POST /v1/labels`, at most 10,000 per request).

The private key never leaves this process; the ledger only checks and stores the signatures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.client.transport import HttpTransport, LedgerError, LocalTransport, Transport
from ledger.keys import KeyPair
from verification.label import sign_label

UPLOAD_BATCH = 10_000

__all__ = ["UPLOAD_BATCH", "ledger_origin", "sign_labels", "upload_labels"]


def ledger_origin(transport: Transport) -> str:
    """The ledger's origin (its log key's name, section 11.2), which every label signature covers."""
    if isinstance(transport, LocalTransport):
        return transport.ledger.identity().origin
    if isinstance(transport, HttpTransport):
        response = transport.http.get("/v1/log/key")
        if response.status_code != 200:
            raise LedgerError(response.status_code, _problem(response))
        return response.json()["origin"]
    raise TypeError(f"unsupported transport {type(transport).__name__}")


def sign_labels(keys: KeyPair, origin: str, tags: Sequence[str]) -> list[dict[str, str]]:
    """`{"tag", "kid", "sig"}` for each tag id, signed with the operator key `keys`."""
    labels = []
    for tag in tags:
        kid, sig = sign_label(keys.private_key, keys.kid, origin, tag).split(".", 1)
        labels.append({"tag": tag, "kid": kid, "sig": sig})
    return labels


def upload_labels(transport: Transport, keys: KeyPair, tags: Sequence[str], *, origin: str | None = None
                  ) -> dict[str, int]:
    """Sign the labels of `tags` with the operator key `keys` and upload them, `UPLOAD_BATCH` at a time.

    `origin`, if given, must be the ledger's (a pin: refuse to sign for another log). Returns the totals
    `{"labels", "stored", "unchanged"}`; raises `LedgerError` if the ledger refuses a batch (earlier batches
    stay stored: each batch is all or nothing).
    """
    actual = ledger_origin(transport)
    if origin is not None and origin != actual:
        raise LedgerError(400, {"rule": "label.origin", "detail": f"the ledger's origin is {actual!r}, not the "
                                                                  f"{origin!r} you expect: nothing was signed"})
    totals = {"labels": 0, "stored": 0, "unchanged": 0}
    unique = list(dict.fromkeys(tags))
    for i in range(0, len(unique), UPLOAD_BATCH):
        result = _send(transport, sign_labels(keys, actual, unique[i:i + UPLOAD_BATCH]))
        for k in totals:
            totals[k] += int(result.get(k, 0))
    return totals


def _send(transport: Transport, labels: list[dict[str, str]]) -> dict[str, Any]:
    if isinstance(transport, LocalTransport):
        from ledger.labels import LabelsRejected, store_labels

        try:
            return store_labels(transport.ledger, labels).to_json()
        except LabelsRejected as rejected:
            first = rejected.first
            raise LedgerError(rejected.status, {"rule": first.rule, "field": first.field, "detail": first.detail,
                                                "errors": [p.to_json() for p in rejected.problems[:100]]}) from None
    if isinstance(transport, HttpTransport):
        response = transport.http.post("/v1/labels", json={"labels": labels})
        if response.status_code >= 400:
            raise LedgerError(response.status_code, _problem(response))
        return response.json()
    raise TypeError(f"unsupported transport {type(transport).__name__}")


def _problem(response: Any) -> dict[str, Any]:
    try:
        return response.json()
    except ValueError:
        return {"detail": response.text}
