"""Sealed evidence files (protocol 16.2 and 16.4, since 1.10), over real HTTP on both backends.

A signed event of an incident names its evidence files by SHA-256 and media type; the files themselves (a photo
taken on the monitor's phone, an owner's statement) are uploaded beside the log: only bytes that a signed event
names are accepted, append-only, and only authorised readers of the incident's sealed details can read them back.
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta

import httpx
import pytest

from ledger.client.read_auth import read_authorization
from tests.integration.test_risk_api import SITE, RiskWorld, problem_of, world  # noqa: F401 (the fixture)
from verification.encoding import format_time
from verification.sealed_details import commitment, new_details

PHOTO = b"\xff\xd8\xff\xe0" + os.urandom(200_000)  # what a phone's JPEG looks like to the ledger: bytes
STATEMENT = b"%PDF-1.4 " + os.urandom(5_000)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def incident(world: RiskWorld) -> str:  # noqa: F811
    """INC-0003: a report naming a photo; an action whose owner reports progress naming a statement."""
    monitor, operator = world.clients["monitor"], world.clients["itsci"]
    now = world.ledger.view_time()
    monitor.report_incident("INC-0003", site=SITE, category="environment", severity="medium",
                            occurred_at=format_time(now - timedelta(hours=2)),
                            details_sha256=commitment(new_details("Mercury spilt near the stream")),
                            evidence=[{"sha256": sha(PHOTO), "media_type": "image/jpeg", "name": "stream"}])
    operator.assign_action("INC-0003", "A1", owner="coop", description="Clean the stream bank",
                           cycle=format_time(now)[:7])
    world.clients["coop"].report_progress("INC-0003", "A1", "bank cleaned", percent=100,
                                          evidence=[{"sha256": sha(STATEMENT), "media_type": "application/pdf"}])
    return "INC-0003"


def put(world: RiskWorld, incident: str, digest: str, data: bytes, media_type: str) -> httpx.Response:
    return world.http.put(f"/v1/incidents/{incident}/evidence/{digest}", content=data,
                          headers={"content-type": media_type})


def signed_get(world: RiskWorld, reader: str | None, path: str) -> httpx.Response:
    headers = {} if reader is None else {"Authorization": read_authorization(reader, world.keys[reader], path)}
    return world.http.get(path, headers=headers)


def test_a_named_file_is_uploaded_once_and_read_only_by_authorised_readers(world: RiskWorld, incident: str) -> None:  # noqa: F811
    first = put(world, incident, sha(PHOTO), PHOTO, "image/jpeg")
    assert first.status_code == 200, first.text
    assert first.json() == {"incident": incident, "sha256": sha(PHOTO), "media_type": "image/jpeg",
                            "size": len(PHOTO), "stored": True}
    again = put(world, incident, sha(PHOTO), PHOTO, "image/jpeg")
    assert again.status_code == 200 and again.json()["stored"] is False
    # a file named by a later event of the incident (the owner's progress report) too
    assert put(world, incident, sha(STATEMENT), STATEMENT, "application/pdf").status_code == 200

    path = f"/v1/incidents/{incident}/evidence/{sha(PHOTO)}"
    for reader in ("monitor", "itsci", "auditor", SITE, "coop"):  # 16.4: reporter, operator, auditor, site, owner
        got = signed_get(world, reader, path)
        assert got.status_code == 200, (reader, got.text)
        assert got.content == PHOTO and got.headers["content-type"] == "image/jpeg"
        assert "no-store" in got.headers["cache-control"]
    problem_of(signed_get(world, None, path), 401, "read.unauthenticated")
    problem_of(signed_get(world, "trader", path), 403, "read.forbidden")
    # the incident's view lists the files to its authorised readers, never to the public
    view = signed_get(world, "monitor", f"/v1/incidents/{incident}").json()
    assert {(f["sha256"], f["media_type"], f["size"]) for f in view["evidence_files"]} == {
        (sha(PHOTO), "image/jpeg", len(PHOTO)), (sha(STATEMENT), "application/pdf", len(STATEMENT))}
    assert "evidence_files" not in world.http.get(f"/v1/incidents/{incident}").json()


def test_only_the_bytes_a_signed_event_names_are_accepted(world: RiskWorld, incident: str) -> None:  # noqa: F811
    other = PHOTO[:-1] + b"\x00"
    body = problem_of(put(world, incident, sha(PHOTO), other, "image/jpeg"), 409, "evidence.mismatch")
    assert body["sha256"] == sha(other) and body["expected"] == sha(PHOTO)
    problem_of(put(world, incident, sha(other), other, "image/jpeg"), 404, "evidence.unknown")
    body = problem_of(put(world, incident, sha(PHOTO), PHOTO, "image/png"), 415, "evidence.media_type")
    assert body["expected"] == "image/jpeg"
    problem_of(put(world, "INC-0404", sha(PHOTO), PHOTO, "image/jpeg"), 404, "incident.unknown")
    problem_of(put(world, incident, "AB" * 32, PHOTO, "image/jpeg"), 400, "evidence.invalid_hash")
    problem_of(put(world, "inc-3", sha(PHOTO), PHOTO, "image/jpeg"), 400, "incident.invalid_id")
    big = b"\x00" * ((10 << 20) + 1)
    problem_of(put(world, incident, sha(big), big, "image/jpeg"), 413, "request.too_large")
    # nothing of it was kept, and a file not uploaded is 404 to an authorised reader
    assert world.ledger.store.sealed_evidence_list(incident) == []
    problem_of(signed_get(world, "monitor", f"/v1/incidents/{incident}/evidence/{sha(PHOTO)}"), 404,
               "evidence.unknown")


def test_stored_evidence_is_append_only(world: RiskWorld, incident: str) -> None:  # noqa: F811
    assert put(world, incident, sha(PHOTO), PHOTO, "image/jpeg").status_code == 200
    store = world.ledger.store
    with pytest.raises(Exception) as refused:
        with store.datastore.transaction(commit=True) as curs:  # type: ignore[attr-defined]
            curs.execute("UPDATE tagledger_sealed_evidence SET data = data")
    assert "append-only" in str(refused.value) or "tagledger" in str(refused.value)
    assert [row[0] for row in store.sealed_evidence_list(incident)] == [sha(PHOTO)]
