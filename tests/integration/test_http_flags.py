"""Fraud flags over real HTTP, on both backends: `GET /v1/tags/{id}` shows `flags` and the verdict `flagged`.

The app follows the flags projection in a thread (as `tagledger serve`'s supervisor does), so a flag derived
from the log appears a moment after the write; a refused attempt on a finished tag appears at once.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from ledger.client import LedgerError

SITE, TRADER, DEPOT = "kalimbi-site", "bukavu-trader", "goma-processing"


def wait_for_flags(live, tag: str, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ANN001
    """The view once it shows flags and its `flags_position` covers the whole log: the position is read before the
    flags (a view never claims more than its flags saw), so a view can show flags with an older position."""
    size = live.entries()
    deadline = time.monotonic() + timeout
    while True:
        response = live.http.get(f"/v1/tags/{tag}")
        assert response.status_code == 200, response.text
        document = response.json()
        if (document["flags"] and (document["flags_position"] or 0) >= size) or time.monotonic() > deadline:
            return document
        time.sleep(0.05)


def test_the_tag_view_shows_flags_and_the_flagged_verdict(live_ledger) -> None:
    live = live_ledger
    site = live.register(SITE, "site", name="Kalimbi mine site")
    trader = live.register(TRADER, "trader")
    depot = live.register(DEPOT, "processor")
    live.operator.issue_tags(SITE, prefix="KAL-", start=1, count=3)
    live.operator.issue_tags(DEPOT, tags=["LOT-0001"])
    for tag, grams in (("KAL-000001", 30_000), ("KAL-000002", 20_000)):
        site.attach(tag, mineral="tin", mass_g=grams, pit="P1")
        site.dispatch(tag, DEPOT)
        depot.receive(tag, mass_g=grams)
    # the lot weighs 40 g more than its bags: within the tolerance, accepted, and flagged
    receipt = depot.merge("LOT-0001", ["KAL-000001", "KAL-000002"], mass_g=50_040)

    document = wait_for_flags(live, "LOT-0001")
    assert [f["code"] for f in document["flags"]] == ["lot.heavier_than_inputs"]
    [flag] = document["flags"]
    assert flag["evidence"] == [{"seq": receipt["seq"], "hash": receipt["hash"], "note": flag["evidence"][0]["note"]}]
    assert flag["inherited"] is False and flag["tag"] == "LOT-0001" and "50.040 kg" in flag["summary"]
    verdict = document["verdict"]
    assert verdict["code"] == "flagged" and verdict["authentic"] is False
    assert verdict["custody_status"] == "in_custody"
    assert "a lot heavier than what it was made from" in verdict["summary"]
    assert document["flags_position"] >= receipt["seq"] + 1

    bag = live.http.get("/v1/tags/KAL-000001").json()
    assert bag["flags"] == [] and bag["verdict"]["code"] == "merged" and bag["verdict"]["authentic"] is True
    assert "flags" in live.http.get("/openapi.json").json()["components"]["schemas"]["TagViewOut"]["properties"]

    # a voided bag used again: 422 as always, the attempt is kept and shown at once
    site.attach("KAL-000003", mineral="tin", mass_g=10_000, pit="P1")
    site.void("KAL-000003", "stolen")
    with pytest.raises(LedgerError) as refused:
        site.dispatch("KAL-000003", TRADER)
    assert refused.value.status == 422 and refused.value.rule == "tag.finished"
    voided = live.http.get("/v1/tags/KAL-000003").json()
    assert voided["state"]["status"] == "voided" and voided["state"]["pending_recipient"] is None
    [reuse] = voided["flags"]
    assert reuse["code"] == "tag.reuse" and [e["seq"] for e in reuse["evidence"]][1:] == [None]
    assert voided["verdict"]["code"] == "flagged" and voided["verdict"]["custody_status"] == "voided"
    del trader
