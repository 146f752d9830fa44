"""The auditor checks the refused attempts a ledger publishes (protocol 9.1 and 12.1 step 7, since 1.7).

The ledger keeps signed envelopes refused because their tag's life was over, and counts them as evidence of reuse
only when their actor has standing. The auditor, from its own replay of the log, checks each one: well formed,
signed by a key valid then, on a tag already ended, and with the standing the ledger published. A ledger that
counted a stranger's attempt (or hid a holder's standing) fails the audit. The rule itself is stated twice, in
`domain.flags` (the ledger) and `verification.standing` (the auditor): hypothesis compares them.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.app import create_app
from domain import flags as domain_flags
from ledger.bundle import export_bundle
from ledger.client import LedgerError
from tests.integration.conftest import ServerThread
from tests.ledger.world import World, attach_and_deliver, make_world
from verification import audit, standing


@pytest.fixture
def world(store_url: str) -> Iterator[World]:
    w = make_world(store_url, tags=6)
    try:
        attach_and_deliver(w, "KAL-000001")  # kalimbi -> trader
        w.clients["trader"].void("KAL-000001", "damaged", time=w.tick())
        for org in ("trader", "exporter"):  # its last holder, and a stranger: both refused, both kept
            with pytest.raises(LedgerError) as refused:
                w.clients[org].dispatch("KAL-000001", "refiner", time=w.tick())
            assert refused.value.rule == "tag.finished"
        w.ledger.start_checkpoints(w.log_key, publish_in_background=False)
        w.ledger.start_projection(follow=False).catch_up()
        yield w
    finally:
        w.ledger.close()


def _audit(*argv: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = audit.main([*argv, "--json", "--no-progress", "--workers", "0", "--no-state"])
    return status, json.loads(out.getvalue())


def _step(report: dict[str, Any], name: str) -> str:
    [text] = [s["result"] for s in report["steps"] if s["step"] == name]
    return text


def _rewrite_attempts(bundle: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    out = bundle.with_name("tampered.zip")
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "refused-attempts.ndjson":
                docs = [json.loads(line) for line in data.splitlines()]
                for doc in docs:
                    change(doc)
                data = b"".join(json.dumps(d).encode() + b"\n" for d in docs)
            dst.writestr(item, data)
    return out


def test_the_published_attempts_agree_with_the_replay(world: World, tmp_path: Path) -> None:
    attempts = [judged for _, judged in world.ledger.refused_attempts()]
    assert [(j.attempt.body["actor"], j.standing) for j in attempts] == [("trader", "custody"), ("exporter", None)]

    with ServerThread(create_app(world.ledger, follow_projection=False)) as server:
        status, report = _audit(server.url, "--vkey", world.ledger.identity().vkey)
        served = server_attempts(server.url)
    assert status == 0, report
    assert "1 counted, 1 by organisations without standing" in _step(report, "refused attempts")
    assert [(a["envelope"]["body"]["actor"], a["counted"]) for a in served] == [("trader", True), ("exporter", False)]

    bundle = tmp_path / "ledger.zip"
    export_bundle(world.ledger, bundle)
    status, report = _audit(str(bundle), "--vkey", world.ledger.identity().vkey)
    assert status == 0, report
    assert "2 kept as evidence" in _step(report, "refused attempts")


def server_attempts(url: str) -> list[dict[str, Any]]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/v1/log/refused-attempts?limit=1") as answer:  # noqa: S310
        first = json.loads(answer.read())
    assert len(first["attempts"]) == 1 and first["next"] is not None  # paged
    with urllib.request.urlopen(f"{url}/v1/log/refused-attempts?after={first['next']}") as answer:  # noqa: S310
        rest = json.loads(answer.read())
    assert rest["next"] is None
    return first["attempts"] + rest["attempts"]


@pytest.mark.parametrize("lie, words", [
    ("count the stranger", "the ledger says the standing of exporter is 'custody'"),
    ("hide the holder", "the ledger says the standing of trader is None"),
    ("edit the envelope", "hash is not the one published"),
    ("move it before the end", "had not ended"),
])
def test_a_ledger_that_misjudges_an_attempt_fails_the_audit(world: World, tmp_path: Path, lie: str,
                                                            words: str) -> None:
    bundle = tmp_path / "ledger.zip"
    export_bundle(world.ledger, bundle)
    ended = next(s.seq for s in world.ledger.store.iter_all() if s.type == "tag_voided")

    def change(doc: dict[str, Any]) -> None:
        actor = doc["envelope"]["body"]["actor"]
        if lie == "count the stranger" and actor == "exporter":
            doc["standing"], doc["counted"] = "custody", True
        elif lie == "hide the holder" and actor == "trader":
            doc["standing"], doc["counted"] = None, False
        elif lie == "edit the envelope" and actor == "trader":
            doc["envelope"]["body"]["data"]["to"] = "depot"
        elif lie == "move it before the end":
            doc["log_size"] = ended

    status, report = _audit(str(_rewrite_attempts(bundle, change)), "--vkey", world.ledger.identity().vkey)
    assert status == 1, report
    assert words in report["failure"], report["failure"]


EVENT_TYPES = ["tag_attached", "custody_dispatched", "custody_received", "lot_formed", "lot_split", "tag_consumed",
               "tag_voided", "tag_scanned", "tags_issued", "incident_reported", "key_added"]
ORGS = ["site-a", "trader-b", "refiner-c", "customs-d", "monitor-e", "rival-f"]
ROLES = [None, "site", "trader", "refiner", "authority", "monitor", "partner", "operator"]


@given(events=st.lists(st.tuples(st.sampled_from(EVENT_TYPES), st.sampled_from(ORGS), st.sampled_from(ORGS)),
                       max_size=12),
       actor=st.sampled_from(ORGS), role=st.sampled_from(ROLES))
def test_the_ledger_and_the_auditor_state_standing_alike(events: list[tuple[str, str, str]], actor: str,
                                                         role: str | None) -> None:
    ours: list[str] = []
    theirs: set[str] = set()
    for kind, who, to in events:
        body = {"type": kind, "actor": who, "data": {"to": to}}
        domain_flags.add_parties(ours, domain_flags.custody_parties(body))
        theirs.update(standing.parties_named(kind, who, body["data"]))
    assert set(ours) == theirs
    assert domain_flags.standing(actor, role, ours) == standing.standing(actor, role, theirs)
