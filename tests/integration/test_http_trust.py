"""Trust under attack, over real HTTP on both backends (issue 11, points 1 and 2; protocol 7 and 9.1, since 1.7).

1. A revoked key signs nothing the ledger receives after the revocation, whatever time the event claims: the
   exact attack reported (an envelope signed with the revoked key, dated just before the revocation's
   `effective`, was accepted with 201) is now 422 `key.revoked`, and custody does not move.
2. A refused attempt on a finished tag, or a signed scan after its end, counts as evidence of reuse only when it
   comes from an organisation with standing (one that held the tag or was named to receive it; an authority or a
   monitor for scans). A competitor's attempt is kept and listed apart (`refused_attempts`, `counted: false`)
   and changes neither the flags nor the verdict.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ledger.client import LedgerClient, LedgerError
from ledger.keys import KeyPair
from verification.encoding import format_time

SITE, TRADER, REFINER, RIVAL = "kalimbi-site", "bukavu-trader", "bruges-refinery", "rival-trading"
GPS = {"lat": "-2.500000", "lon": "28.860000"}


def view(live, tag: str) -> dict[str, Any]:  # noqa: ANN001
    response = live.http.get(f"/v1/tags/{tag}")
    assert response.status_code == 200, response.text
    return response.json()


def settled_view(live, tag: str, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ANN001
    """The view once the flags projection has folded the whole log (flags derived from entries lag a moment)."""
    size = live.entries()
    deadline = time.monotonic() + timeout
    while True:
        document = view(live, tag)
        if (document["flags_position"] or 0) >= size or time.monotonic() > deadline:
            return document
        time.sleep(0.05)


def test_a_revoked_key_cannot_backdate_past_its_revocation(live_ledger) -> None:
    live = live_ledger
    t0 = datetime.now(timezone.utc)  # the story is dated in the next minute (the ledger allows 300 s ahead)
    at = lambda seconds: t0 + timedelta(seconds=seconds)  # noqa: E731
    site = live.register(SITE, "site", time=at(1))
    live.register(TRADER, "trader", time=at(1))
    live.operator.issue_tags(SITE, prefix="KAL-", start=1, count=2, time=at(2))
    site.attach("KAL-000001", mineral="tin", mass_g=40_000, pit="P1", time=at(3))

    stolen = live.orgs[SITE].keys
    replacement = KeyPair.generate()
    live.operator.add_key(SITE, replacement.public_key, time=at(4))
    effective = at(10)  # the phone was stolen then; the operator hears of it at 20 s
    live.operator.revoke_key(SITE, stolen.kid, "phone stolen", effective=format_time(effective), time=at(20))
    size = live.entries()

    thief = live.client_for(SITE, stolen, retries=0)
    with pytest.raises(LedgerError) as refused:  # dated just before `effective`: accepted (201) before 1.7
        thief.dispatch("KAL-000001", TRADER, time=effective - timedelta(microseconds=1))
    assert refused.value.status == 422 and refused.value.rule == "key.revoked"
    assert refused.value.problem["field"] == "/body/key"
    with pytest.raises(LedgerError) as again:  # dated before the attachment: the key is judged first
        thief.dispatch("KAL-000001", TRADER, time=at(2))
    assert again.value.rule == "key.revoked"
    assert live.entries() == size  # nothing was written

    document = view(live, "KAL-000001")
    assert document["state"]["status"] == "in_custody" and document["state"]["holder"] == SITE
    assert document["flags"] == [] and document["verdict"]["code"] == "in_custody"

    # the site records the same hand-over with its new key, dated before the revocation: a late record is fine
    owner = live.client_for(SITE, replacement)
    receipt = owner.dispatch("KAL-000001", TRADER, time=at(9))
    assert receipt["seq"] == size
    assert view(live, "KAL-000001")["state"]["status"] == "in_transit"


def _consumed_lot(live) -> tuple[LedgerClient, LedgerClient, LedgerClient]:  # noqa: ANN001
    site = live.register(SITE, "site")
    trader = live.register(TRADER, "trader")
    refiner = live.register(REFINER, "refiner", rmi_cid="CID001234")
    live.operator.issue_tags(SITE, prefix="KAL-", start=1, count=2)
    live.operator.issue_tags(TRADER, tags=["LOT-0001"])
    for tag in ("KAL-000001", "KAL-000002"):
        site.attach(tag, mineral="tin", mass_g=20_000, pit="P1", gps=GPS)
        site.dispatch(tag, TRADER)
        trader.receive(tag, mass_g=20_000)
    trader.merge("LOT-0001", ["KAL-000001", "KAL-000002"], mass_g=40_000)
    trader.dispatch("LOT-0001", REFINER)
    refiner.receive("LOT-0001", mass_g=40_000)
    refiner.consume("LOT-0001", product="tin ingots")
    return site, trader, refiner


def test_a_stranger_cannot_flag_a_finished_lot(live_ledger) -> None:
    live = live_ledger
    _, trader, _ = _consumed_lot(live)
    rival = live.register(RIVAL, "trader")
    monitor = live.register("field-monitor", "monitor")

    # the reported smear: one refused envelope by an organisation that never held the lot
    with pytest.raises(LedgerError) as refused:
        rival.dispatch("LOT-0001", TRADER)
    assert refused.value.status == 422 and refused.value.rule == "tag.finished"
    # and a signed scan "at a market", after the lot's end, by the same stranger
    rival.scan("LOT-0001", gps=GPS, location="Goma market", purpose="purchase")

    document = settled_view(live, "LOT-0001")
    assert document["flags"] == []
    assert document["verdict"]["code"] == "consumed" and document["verdict"]["authentic"] is True
    [kept] = document["refused_attempts"]
    assert kept["counted"] is False and kept["standing"] is None and kept["rule"] == "tag.finished"
    assert kept["envelope"]["body"]["actor"] == RIVAL and kept["envelope"]["body"]["type"] == "custody_dispatched"
    assert kept["envelope"]["body"]["key"] in document["keys"]  # its signature can be checked from the view
    assert [e["type"] for e in document["events"]][-1] == "tag_scanned"  # the scan is in the log, shown
    # the page for people shows the attempt apart from the warnings, in the reader's language
    page = live.http.get("/t/LOT-0001", params={"lang": "fr"})
    assert page.status_code == 200
    assert 'id="uncounted"' in page.text and "Tentatives refusées non retenues" in page.text
    assert 'id="flags"' not in page.text and kept["hash"][:16] in page.text

    # the lot's last holder tries to use the finished tag again: that one counts
    with pytest.raises(LedgerError):
        trader.dispatch("LOT-0001", REFINER)
    document = view(live, "LOT-0001")
    by_actor = {a["envelope"]["body"]["actor"]: a for a in document["refused_attempts"]}
    assert by_actor[TRADER]["counted"] is True and by_actor[TRADER]["standing"] == "custody"
    assert by_actor[RIVAL]["counted"] is False
    [reuse] = document["flags"]
    assert reuse["code"] == "tag.reuse" and TRADER in reuse["summary"] and RIVAL not in reuse["summary"]
    assert [e["hash"] for e in reuse["evidence"] if e["seq"] is None] == [by_actor[TRADER]["hash"]]
    assert document["verdict"]["code"] == "flagged"

    # a monitor's scan after the end counts, by office
    monitor.scan("KAL-000001", gps=GPS, location="Goma market", purpose="inspection")
    bag = settled_view(live, "KAL-000001")
    assert [f["code"] for f in bag["flags"]] == ["tag.reuse"] and bag["verdict"]["code"] == "flagged"
