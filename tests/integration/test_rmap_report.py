"""GET /v1/reports/rmap/{refiner} over real HTTP, on both backends: JSON, CSV and XLSX (protocol section 21).

Two mine sites (one in the DRC with an armed-group red flag and a corrective action, one in Rwanda), a depot
that merges the DRC bags into a lot, a refiner that receives the lot and a Rwandan bag and consumes the lot. The
report lists both, by mine, its masses reconcile with GET /v1/tags/{id}, the CSV parses with the documented
columns, the XLSX reads back with openpyxl with headings in the reader's language, and the period filters.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import openpyxl
import pytest

from ledger.rmap_report import CMRT_COLUMNS, CSV_COLUMNS
from tests.integration.conftest import LiveLedger
from verification.sealed_details import commitment, new_details

PROBLEM = "application/problem+json"
TODAY = datetime.now(timezone.utc).date()


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def world(live_ledger: LiveLedger) -> LiveLedger:
    live = live_ledger
    mine_a = live.register("mine-a", "site", name="Mine A", country="CD")
    mine_b = live.register("mine-b", "site", name="Mine B", country="RW")
    depot = live.register("depot-a", "processor", name="Depot A")
    refiner = live.register("refiner-x", "refiner", name="Refiner X", country="MY", rmi_cid="CID001234")
    live.register("trader-t", "trader", name="Trader T")
    monitor = live.register("monitor-a", "monitor", name="Monitor A")
    live.operator.issue_tags("mine-a", prefix="BAG-", start=1, count=2)
    live.operator.issue_tags("mine-b", tags=["RWB-000001"])
    live.operator.issue_tags("depot-a", tags=["LOT-0001"])
    for tag, mass in (("BAG-000001", 40_000), ("BAG-000002", 41_000)):
        mine_a.attach(tag, mineral="tin", ore="cassiterite", mass_g=mass, pit="P7")
        mine_a.dispatch(tag, "depot-a")
        depot.receive(tag, mass_g=mass)
    monitor.report_incident("INC-7", site="mine-a", category="armed_groups", severity="high", occurred_at=stamp(),
                            details_sha256=commitment(new_details("armed men at the pit")),
                            summary="Armed group at the pit")
    live.operator.assign_action("INC-7", "A1", owner="mine-a", description="Suspend sales from the pit",
                                cycle=datetime.now(timezone.utc).strftime("%Y-%m"))
    depot.merge("LOT-0001", ["BAG-000001", "BAG-000002"], mass_g=80_900)
    depot.dispatch("LOT-0001", "refiner-x", mass_g=80_900)
    refiner.receive("LOT-0001", mass_g=80_850)
    refiner.consume("LOT-0001", mass_g=80_850, product="tin ingot")
    mine_b.attach("RWB-000001", mineral="tantalum", ore="coltan", mass_g=25_000, pit="R1")
    mine_b.dispatch("RWB-000001", "refiner-x")
    refiner.receive("RWB-000001", mass_g=24_990)
    return live


def report(live: LiveLedger, refiner: str = "refiner-x", start=TODAY, end=TODAY, **params):
    return live.http.get(f"/v1/reports/rmap/{refiner}", params={"from": str(start), "to": str(end), **params})


def test_the_json_report_by_mine_with_masses_that_reconcile_with_the_tag_views(world: LiveLedger) -> None:
    response = report(world)
    assert response.status_code == 200, response.text
    r = response.json()
    assert r["format"] == "tagledger/rmap-input-report/v1"
    assert r["refiner"] == {"org": "refiner-x", "name": "Refiner X", "country": "MY", "rmi_cid": "CID001234"}
    lots = {lot["tag"]: lot for lot in r["lots"]}
    assert set(lots) == {"LOT-0001", "RWB-000001"}
    lot = lots["LOT-0001"]
    assert lot["received"]["mass_g"] == 80_850 and lot["received"]["from"] == "depot-a"
    assert lot["consumed"]["mass_g"] == 80_850 and lot["status"] == "consumed"
    assert lot["bags"] == 2 and lot["bags_complete_chain"] == 2 and lot["chain_complete"]
    assert lot["mass_balance"]["attached_g"] == 81_000 and lot["mass_balance"]["loss_g"] == 150
    assert lots["RWB-000001"]["consumed"] is None and lots["RWB-000001"]["received"]["from"] == "mine-b"
    # every mass reconciles with the public tag views
    for tag, doc in lots.items():
        view = world.http.get(f"/v1/tags/{tag}").json()
        assert doc["mass_g"] == view["state"]["mass_g"]
        receipts = [e for e in view["events"] if e["type"] == "custody_received" and e["actor"] == "refiner-x"]
        assert doc["received"]["mass_g"] == receipts[-1]["envelope"]["body"]["data"]["mass_g"]
        attached = 0
        for origin in view["origins"]:
            bag = world.http.get(f"/v1/tags/{origin['tag']}").json()
            [attach] = [e for e in bag["events"] if e["type"] == "tag_attached"]
            attached += attach["envelope"]["body"]["data"]["mass_g"]
        assert doc["mass_balance"]["attached_g"] == attached == sum(o["attached_mass_g"] for o in doc["origins"])
        assert doc["mass_balance"]["loss_g"] == attached - view["state"]["mass_g"]
    mines = {m["site"]: m for m in r["mines"]}
    assert mines["mine-a"]["country"] == "CD" and mines["mine-a"]["covered_country"] and mines["mine-a"]["cahra"]
    assert mines["mine-a"]["red_flags"] == 1 and mines["mine-a"]["incidents_open"] == 1
    assert mines["mine-a"]["actions_open"] == 1 and mines["mine-a"]["attached_mass_g"] == 81_000
    assert mines["mine-b"]["country"] == "RW" and mines["mine-b"]["red_flags"] == 0
    [incident] = r["incidents"]
    assert incident["id"] == "INC-7" and incident["red_flag"] and incident["open_at_end"]
    assert incident["actions"][0]["description"] == "Suspend sales from the pit"
    assert "armed men at the pit" not in response.text  # sealed details never appear
    totals = r["totals"]
    assert totals["received_mass_g"] == 80_850 + 24_990 and totals["consumed_mass_g"] == 80_850
    assert totals["bags"] == 3 and totals["bags_complete_chain"] == 3 and totals["red_flags"] == 1


def test_csv_parses_with_the_documented_columns(world: LiveLedger) -> None:
    response = report(world, format="csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(response.text)))
    assert tuple(csv.DictReader(io.StringIO(response.text)).fieldnames) == CSV_COLUMNS
    by_lot = {row["lot_tag"]: row for row in parsed}
    assert len(parsed) == 2
    row = by_lot["LOT-0001"]
    assert (row["metal"], row["mine_name"], row["mine_country"], row["smelter_identification"]) == (
        "Tin", "Mine A", "CD", "CID001234")
    assert (row["covered_country"], row["cahra"], row["red_flags"], row["actions_open"]) == ("yes", "yes", "1", "1")
    assert int(row["attached_mass_g"]) == 81_000 and int(row["received_mass_g"]) == 80_850
    assert by_lot["RWB-000001"]["metal"] == "Tantalum" and by_lot["RWB-000001"]["consumed_at"] == ""
    json_totals = report(world).json()["totals"]
    assert sum(int(r["attached_mass_g"]) for r in parsed) == json_totals["attached_mass_g"]


@pytest.mark.parametrize("lang, heading, yes", [("en", "Metal (*)", "yes"), ("fr", "Métal", "oui"),
                                                 ("sw", "Metali", "ndiyo")])
def test_xlsx_reads_back_with_headings_in_the_reader_s_language(world: LiveLedger, lang, heading, yes) -> None:
    response = report(world, format="xlsx", lang=lang)
    assert response.status_code == 200
    assert response.headers["content-language"] == lang
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert len(book.sheetnames) == 3
    lots = book[book.sheetnames[0]]
    header = [c.value for c in lots[1]]
    assert header[0] == heading and len(header) == len(CSV_COLUMNS)
    if lang == "en":
        for column, cmrt in CMRT_COLUMNS.items():
            assert header[CSV_COLUMNS.index(column)] == cmrt
    body = [[c.value for c in row] for row in lots.iter_rows(min_row=2)]
    assert len(body) == 2
    lot = next(r for r in body if r[CSV_COLUMNS.index("lot_tag")] == "LOT-0001")
    assert lot[CSV_COLUMNS.index("attached_mass_g")] == 81_000
    assert lot[CSV_COLUMNS.index("covered_country")] == yes
    incidents = book[book.sheetnames[2]]
    row = [c.value for c in incidents[2]]
    assert row[0] == "INC-7"
    assert row[2] == {"en": "Armed groups", "fr": "Groupes armés", "sw": "Vikundi vyenye silaha"}[lang]  # category


def test_the_period_filters(world: LiveLedger) -> None:
    before = report(world, start=TODAY - timedelta(days=400), end=TODAY - timedelta(days=1)).json()
    after = report(world, start=TODAY + timedelta(days=1), end=TODAY + timedelta(days=30)).json()
    for empty in (before, after):
        assert empty["lots"] == [] and empty["mines"] == [] and empty["totals"]["received_mass_g"] == 0
    around = report(world, start=TODAY - timedelta(days=1), end=TODAY + timedelta(days=1)).json()
    assert {lot["tag"] for lot in around["lots"]} == {"LOT-0001", "RWB-000001"}
    assert around["period"]["to"].startswith(str(TODAY + timedelta(days=2)))  # the `to` day is included


@pytest.mark.parametrize("path, status, rule", [
    ("/v1/reports/rmap/nobody-here?from=2026-01-01&to=2026-01-31", 404, "org.unknown_refiner"),
    ("/v1/reports/rmap/mine-a?from=2026-01-01&to=2026-01-31", 404, "org.unknown_refiner"),
    ("/v1/reports/rmap/Not%20an%20org?from=2026-01-01&to=2026-01-31", 400, "org.invalid_id"),
    ("/v1/reports/rmap/refiner-x?from=2026-02-01&to=2026-01-31", 400, "report.invalid_period"),
    ("/v1/reports/rmap/refiner-x?from=2026-13-01&to=2026-12-31", 400, "report.invalid_period"),
    ("/v1/reports/rmap/refiner-x?from=yesterday&to=2026-01-31", 400, "report.invalid_period"),
    ("/v1/reports/rmap/refiner-x?from=2000-01-01&to=2026-01-31", 400, "report.invalid_period"),
    ("/v1/reports/rmap/refiner-x?from=2026-01-01&to=9999-12-31", 400, "report.invalid_period"),
    ("/v1/reports/rmap/refiner-x?from=2026-01-01&to=2026-01-31&format=pdf", 400, None),
    ("/v1/reports/rmap/refiner-x?to=2026-01-31", 400, None),
])
def test_bad_requests_are_problems(world: LiveLedger, path: str, status: int, rule: str | None) -> None:
    response = world.http.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM
    if rule is not None:
        assert response.json()["rule"] == rule
