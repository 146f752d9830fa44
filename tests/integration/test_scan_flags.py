"""Signed scans (`tag_scanned`) as fraud evidence, over real HTTP, on both backends: a tag received in Lubumbashi
and scanned in Kigali 10 minutes later, and a tag scanned after it was consumed, shown by the JSON tag view
(GET /v1/tags/{tag}) and the verification page (GET /t/{tag}) in English and French; and `tagledger record scan`.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ledger.cli import main as cli_main
from ledger.keys import KeyPair
from tests.integration.test_page import EN, FR, page, text_of

SITE, TRADER, REFINER, CUSTOMS = "kalimbi-site", "lubumbashi-trading", "kigali-refinery", "rra-customs"
CUSTOMS_NAME = "Rwanda Revenue Authority customs"
TRADER_NAME = "Lubumbashi Trading"
LUBUMBASHI = {"lat": "-11.6609", "lon": "27.4794"}
KIGALI = {"lat": "-1.9441", "lon": "30.0619"}  # about 1,170 km from Lubumbashi
KOLWEZI = {"lat": "-10.7148", "lon": "25.4667"}
RECEIVED, CONSUMED, CLI_TAG = "KAL-000001", "KAL-000002", "KAL-000003"


START = datetime.now(timezone.utc)
AHEAD = timedelta(hours=3)


def at(minutes: float) -> str:
    """An event time `minutes` after the test starts (the keys are registered at its start: nothing earlier)."""
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def world(live_ledger, monkeypatch):
    live = live_ledger
    global START
    START = datetime.now(timezone.utc) + timedelta(seconds=5)
    # a story of a few hours, told in a second: the ledger's clock runs ahead (section 7 refuses events dated
    # more than 300 s after it), so that events can be dated up to three hours after the test starts
    monkeypatch.setattr(live.ledger.writer, "clock", lambda: datetime.now(timezone.utc) + AHEAD)
    orgs = {
        SITE: live.register(SITE, "site", name="Kalimbi mine site"),
        TRADER: live.register(TRADER, "trader", name=TRADER_NAME),
        REFINER: live.register(REFINER, "refiner", name="Kigali refinery", country="RW", rmi_cid="CID009999"),
        CUSTOMS: live.register(CUSTOMS, "authority", name=CUSTOMS_NAME, country="RW"),
    }
    live.operator.issue_tags(SITE, prefix="KAL-", start=1, count=3, width=6)
    live.orgs_clients = orgs
    return live


def settled(live, tag: str) -> dict[str, Any]:
    """The tag's JSON view once the flags projection (following the log in the background) has read it all."""
    entries, deadline = live.entries(), time.monotonic() + 10
    document = live.http.get(f"/v1/tags/{tag}").json()
    while (document.get("flags_position") or 0) < entries and time.monotonic() < deadline:
        time.sleep(0.05)
        document = live.http.get(f"/v1/tags/{tag}").json()
    assert document["flags_position"] >= entries
    return document


def flags_section(document: str) -> str:
    match = re.search(r'<section id="flags">(.*?)</section>', document, re.S)
    assert match, "no warnings on the page"
    return match.group(1)


def timeline_row(document: str, seq: int) -> str:
    match = re.search(rf'<li data-seq="{seq}"( class="f")?>(.*?)</li>', document, re.S)
    assert match, f"no timeline row for entry #{seq}"
    assert match.group(1), f"entry #{seq} is not marked as evidence"
    return text_of(match.group(2))


def test_a_tag_scanned_in_kigali_10_minutes_after_its_receipt_in_lubumbashi(world) -> None:
    site, trader, customs = (world.orgs_clients[o] for o in (SITE, TRADER, CUSTOMS))
    site.attach(RECEIVED, mineral="cobalt", mass_g=50_000, pit="P1", time=at(1))
    site.dispatch(RECEIVED, TRADER, time=at(2))
    received = trader.record("custody_received", f"tag:{RECEIVED}",
                             {"mass_g": 49_900, "location": "Lubumbashi", "gps": LUBUMBASHI}, time=at(30))["seq"]
    assert settled(world, RECEIVED)["flags"] == []
    scanned = customs.scan(RECEIVED, gps=KIGALI, location="Kigali", purpose="customs", time=at(40))["seq"]

    # the JSON view: flagged, custody unchanged, the receipt and the scan as evidence
    document = settled(world, RECEIVED)
    assert document["state"]["status"] == "in_custody" and document["state"]["holder"] == TRADER
    verdict = document["verdict"]
    assert verdict["code"] == "flagged" and verdict["authentic"] is False and verdict["custody_status"] == "in_custody"
    assert verdict["summary"].startswith("Flagged: tag reuse.")
    [flag] = document["flags"]
    assert flag["code"] == "tag.reuse" and flag["tag"] == RECEIVED and flag["inherited"] is False
    hashes = {e["seq"]: e["hash"] for e in document["events"]}
    assert [(e["seq"], e["hash"]) for e in flag["evidence"]] == [(received, hashes[received]),
                                                                  (scanned, hashes[scanned])]
    assert flag["evidence"][0]["note"].startswith(f"custody_received of {RECEIVED} at -11.6609,27.4794")
    assert flag["evidence"][1]["note"].startswith(f"tag_scanned of {RECEIVED} at -1.9441,30.0619")
    assert "10 min apart" in flag["summary"] and f"#{received}" in flag["summary"]
    assert [e["type"] for e in document["events"]][-1] == "tag_scanned"
    assert world.http.get(f"/v1/tags/{RECEIVED}", params={"as_of": scanned}).json()["flags"] == []

    # the page, in English: the warning, its evidence linked to the timeline, the scan in words
    english = page(world, RECEIVED, headers=EN)
    warnings = flags_section(english)
    assert '<div class="box warn flag" data-code="tag.reuse">' in warnings
    words = text_of(warnings)
    assert "Tag reuse: seen in places too far apart, or seen or used after its end" in words
    for evidence in flag["evidence"]:
        assert f'<a href="#e{evidence["seq"]}">log entry #{evidence["seq"]}</a>' in warnings
        assert evidence["hash"][:16] in warnings
    assert "Possible cloned tag: recorded at two places" in words  # the ledger's reason, in the reader's words
    assert f"Scanned by {CUSTOMS_NAME} at Kigali (customs)," in words  # the evidence in the reader's words
    assert f"Received by {TRADER_NAME}," in words
    assert timeline_row(english, scanned).endswith(f"Scanned by {CUSTOMS_NAME} at Kigali (customs) "
                                                   "-1.9441, 30.0619 ! Evidence for a warning")
    assert "Lubumbashi" in timeline_row(english, received)
    assert "warning below" in text_of(re.search(r'id="verdict"[^>]*>(.*?)</section>', english, re.S).group(1))

    # and in French
    french = page(world, RECEIVED, headers=FR)
    warnings = text_of(flags_section(french))
    assert "Réutilisation d'étiquette\u00a0: vue en des lieux trop éloignés, ou vue ou utilisée après sa fin" in warnings
    assert f"entrée du journal n° {scanned}" in warnings
    assert f"Scannée par {CUSTOMS_NAME} à Kigali (douane)," in warnings
    assert timeline_row(french, scanned).startswith(at(40)[:10])
    assert f"Scannée par {CUSTOMS_NAME} à Kigali (douane)" in timeline_row(french, scanned)
    assert "SIGNALÉE — à vérifier avant d'accepter" in text_of(french)


def test_a_tag_scanned_after_it_was_consumed(world) -> None:
    site, trader, refiner, customs = (world.orgs_clients[o] for o in (SITE, TRADER, REFINER, CUSTOMS))
    site.attach(CONSUMED, mineral="cobalt", mass_g=20_000, pit="P2", time=at(1))
    site.dispatch(CONSUMED, REFINER, time=at(2))
    refiner.receive(CONSUMED, mass_g=20_000, time=at(3))
    consumed = refiner.consume(CONSUMED, mass_g=20_000, time=at(4))["seq"]
    # seen again, two hours later, at a border post: the tag should be in the refiner's bin
    scanned = customs.scan(CONSUMED, gps=KOLWEZI, purpose="inspection", time=at(124))["seq"]

    document = settled(world, CONSUMED)
    assert document["state"]["status"] == "consumed"
    verdict = document["verdict"]
    assert verdict["code"] == "flagged" and verdict["custody_status"] == "consumed"
    assert verdict["refiner"]["org"] == REFINER
    [flag] = document["flags"]
    assert flag["code"] == "tag.reuse"
    hashes = {e["seq"]: e["hash"] for e in document["events"]}
    assert [(e["seq"], e["hash"]) for e in flag["evidence"]] == [(consumed, hashes[consumed]),
                                                                  (scanned, hashes[scanned])]
    assert flag["evidence"][0]["note"].startswith(f"{CONSUMED} consumed at {REFINER} on ")
    assert flag["evidence"][1]["note"].startswith(f"scanned by {CUSTOMS} (inspection) at -10.7148,25.4667 on ")
    assert "after its life was over" in flag["summary"]

    english = page(world, CONSUMED, headers=EN)
    warnings = flags_section(english)
    assert '<div class="box warn flag" data-code="tag.reuse">' in warnings
    words = text_of(warnings)
    assert "Consumed at Kigali refinery," in words and f"Scanned by {CUSTOMS_NAME} (inspection)," in words
    assert f"Scanned by {CUSTOMS_NAME} on" in words and "after the tag's life was over" in words  # the reason
    for evidence in flag["evidence"]:
        assert f'<a href="#e{evidence["seq"]}">log entry #{evidence["seq"]}</a>' in warnings
    timeline_row(english, consumed)  # both rows stand out as evidence
    assert timeline_row(english, scanned).startswith(at(124)[:10])
    french = text_of(flags_section(page(world, CONSUMED, headers=FR)))
    assert "Consommée chez Kigali refinery," in french and f"Scannée par {CUSTOMS_NAME} (inspection)," in french


def test_record_scan_from_the_command_line(world, tmp_path) -> None:
    site = world.orgs_clients[SITE]
    site.attach(CLI_TAG, mineral="tin", mass_g=1_000, pit="P3")  # now: the command dates its scan now
    key = tmp_path / "customs.key"
    world.orgs[CUSTOMS].keys.save(key)
    code = cli_main(["--home", str(tmp_path / "home"), "record", "scan", CLI_TAG, "--org", CUSTOMS, "--key",
                     str(key), "--url", world.url, "--lat", "-1.9441", "--lon", "30.0619", "--location",
                     "Kigali airport", "--purpose", "customs"])
    assert code == 0
    document = world.http.get(f"/v1/tags/{CLI_TAG}").json()
    last = document["events"][-1]
    assert last["type"] == "tag_scanned" and last["actor"] == CUSTOMS
    assert last["envelope"]["body"]["data"] == {"gps": KIGALI, "location": "Kigali airport", "purpose": "customs"}
    assert document["state"]["status"] == "in_custody" and document["state"]["holder"] == SITE
    # a purpose outside the protocol's list is refused by the command itself
    with pytest.raises(SystemExit):
        cli_main(["record", "scan", CLI_TAG, "--org", CUSTOMS, "--key", str(key), "--url", world.url,
                  "--lat", "0", "--lon", "0", "--purpose", "smuggling"])
    assert KeyPair.load(key).kid == world.orgs[CUSTOMS].keys.kid
