"""Risk and remediation over real HTTP, on SQLite and PostgreSQL (docs/protocol.md 16.2, 16.4, 16.5).

A ledger whose history starts three calendar months ago (so that an action can be overdue now and the monthly
trend has several rows), served by uvicorn in a thread. Incident INC-0001 (worst forms of child labour at
kalimbi, referred to the partner `helpers`) has two actions: A1 (owner coop, due at the start of the month after
the first) still open, hence overdue; A2 (owner kalimbi) verified implemented in the second month. INC-0002 (a
minor safety report) was dismissed in the third month. The monitor recorded the site in the first two months.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import psycopg
import pytest

from api.app import create_app
from ledger.client import HttpTransport, LedgerClient, LedgerError, LocalTransport, Signer
from ledger.client.read_auth import read_authorization, signed_read_headers
from ledger.entries import read_entry
from ledger.genesis import GenesisKeys, create_ledger
from ledger.keys import KeyPair
from ledger.service import Ledger
from ledger.store import open_store
from ledger.store.base import SchemaError, StoredDetails
from tests.ledger.raw_sql import raw_execute
from tests.integration.conftest import ServerThread, http_client
from verification.canonical import jcs
from verification.encoding import format_time, parse_time, sha256_hex
from verification.sealed_details import commitment, new_details

PROBLEM = "application/problem+json"
OPERATOR = "itsci"
SITE = "kalimbi"
ORGS = {
    SITE: "site",
    "coop": "cooperative",
    "trader": "trader",
    "refiner": "refiner",
    "monitor": "monitor",
    "auditor": "auditor",
    "helpers": "partner",
    "saemape": "authority",
}
SITE_RISK_MEMBERS = {"format", "site", "at", "as_of", "access", "reader", "status", "open_red_flags",
                     "open_incidents", "overdue_actions", "incidents", "monitoring", "months"}


def month_start(moment: datetime, back: int) -> datetime:
    """The first instant of the month `back` months before `moment`'s (UTC)."""
    year, month = moment.year, moment.month - back
    while month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, tzinfo=timezone.utc)


def cycle(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


@dataclass
class RiskWorld:
    url: str
    ledger: Ledger
    keys: dict[str, KeyPair]
    clients: dict[str, LedgerClient]
    months: list[datetime]
    """The first instants of the month of the history's start (M0) and of the next three (M3 is now's)."""
    details: dict[str, Any]
    http: httpx.Client
    marks: dict[str, int] = field(default_factory=dict)
    """Log sizes at points of the history."""

    def get(self, path: str, org: str | None = None, **kwargs: Any) -> httpx.Response:
        """GET `path` (path and query, as sent), signed by `org` with its key if given."""
        headers = signed_read_headers(org, self.keys[org], path, **kwargs) if org else {}
        return self.http.get(path, headers=headers)


def _build(url: str, ledger: Ledger) -> tuple[dict[str, KeyPair], dict[str, LedgerClient], list[datetime],
                                               dict[str, Any], dict[str, int]]:
    now = datetime.now(timezone.utc)
    m0 = month_start(now, 3)
    months = [month_start(now, back) for back in (3, 2, 1, 0)]
    m1, m2 = months[1], months[2]
    root = KeyPair.generate()
    create_ledger(ledger, name="risk-test", operator=OPERATOR, operator_name="ITSCI programme", country="CD",
                  log_key_name="tagledger.test/log", keys=GenesisKeys(root, KeyPair.generate()),
                  time=m0 + timedelta(hours=1))
    keys = {OPERATOR: root}
    http = http_client(url)
    clients = {OPERATOR: LedgerClient(HttpTransport(url, client=http), Signer(OPERATOR, root))}
    for i, (org, role) in enumerate(ORGS.items()):
        keys[org] = KeyPair.generate()
        extra: dict[str, Any] = {"gps": {"lat": "-3.1", "lon": "28.2"}, "capacity_kg_per_month": 4000} \
            if role == "site" else {}
        clients[OPERATOR].register_org(org, org.title(), role, "CD", [keys[org].public_key],
                                       time=m0 + timedelta(hours=2, minutes=i), **extra)
        clients[org] = LedgerClient(HttpTransport(url, client=http), Signer(org, keys[org]))
    monitor, operator = clients["monitor"], clients[OPERATOR]
    details = new_details("Two children of about 12 carried ore out of pit P3", gps={"lat": "-3.1012", "lon": "28.21"},
                          notes="Witness: a cooperative member; do not publish")
    marks = {}
    at = lambda month, day, hour=8: month + timedelta(days=day - 1, hours=hour)  # noqa: E731
    monitor.report_incident("INC-0001", site=SITE, category="child_labour", severity="medium", worst_forms=True,
                            occurred_at=format_time(at(m0, 2)), details_sha256=commitment(details),
                            summary="Minors carrying ore", people_affected=2, referred_to="helpers",
                            evidence=[{"sha256": "ab" * 32, "media_type": "image/jpeg"}], time=at(m0, 3))
    monitor.confirm_incident("INC-0001", severity="high", time=at(m0, 4))
    operator.assign_action("INC-0001", "A1", owner="coop", description="Exclude minors from the pits",
                           cycle=cycle(m0), time=at(m0, 5))
    marks["after_a1"] = ledger.store.size()
    operator.assign_action("INC-0001", "A2", owner=SITE, description="Fence pit P3", cycle=cycle(m1),
                           time=at(m0, 5, 9))
    monitor.monitor_site(SITE, cycle(m0), price_paid={"currency": "USD", "minor_per_kg": 900},
                         reference_price={"currency": "USD", "minor_per_kg": 1500},
                         workforce={"women": 40, "men": 160}, concerns=["price", "safety"], time=at(m0, 20))
    clients[SITE].report_progress("INC-0001", "A2", "fence half built", percent=50, time=at(m1, 10))
    monitor.verify_action("INC-0001", "A2", "implemented", time=at(m1, 12))
    monitor.monitor_site(SITE, cycle(m1), price_paid={"currency": "USD", "minor_per_kg": 1200},
                         reference_price={"currency": "USD", "minor_per_kg": 1500}, time=at(m1, 20))
    monitor.report_incident("INC-0002", site=SITE, category="health_safety", severity="low",
                            occurred_at=format_time(at(m2, 1)), details_sha256=commitment(new_details("A loose ladder")),
                            time=at(m2, 2))
    monitor.dismiss_incident("INC-0002", "the ladder was fixed the same day", time=at(m2, 3))
    marks["end"] = ledger.store.size()
    return keys, clients, months, details, marks


@pytest.fixture
def world(store_url: str) -> Iterator[RiskWorld]:
    ledger = Ledger.open(store_url)
    server = ServerThread(create_app(ledger))
    server.start()
    http = http_client(server.url)
    try:
        keys, clients, months, details, marks = _build(server.url, ledger)
        yield RiskWorld(server.url, ledger, keys, clients, months, details, http, marks)
    finally:
        http.close()
        server.stop()
        ledger.close()


def upload(world: RiskWorld, incident: str = "INC-0001", details: Any = None) -> httpx.Response:
    return world.http.put(f"/v1/incidents/{incident}/details", json=world.details if details is None else details)


def problem_of(response: httpx.Response, status: int, rule: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["rule"] == rule and body["status"] == status, body
    return body


# --- sealed details (16.2) -------------------------------------------------------------------------------


def test_details_upload_is_checked_against_the_signed_commitment_and_idempotent(world: RiskWorld) -> None:
    digest = commitment(world.details)
    first = upload(world)
    assert first.status_code == 200, first.text
    assert first.json() == {"incident": "INC-0001", "details_sha256": digest}
    again = upload(world)
    assert again.status_code == 200 and again.json() == first.json()
    # other details (another salt): not what the report committed to
    other = {**world.details, "salt": new_details("x")["salt"]}
    body = problem_of(upload(world, details=other), 409, "details.mismatch")
    assert body["expected"] == digest and body["sha256"] == commitment(other)
    problem_of(upload(world, "INC-9999"), 404, "incident.unknown")
    # what is stored is the exact bytes that were hashed, once
    rows = world.ledger.store.read_sealed_details("INC-0001")
    assert [(r.sha256, r.data) for r in rows] == [(digest, jcs(world.details))]
    assert world.ledger.sealed_details("INC-0001") == world.details
    assert world.ledger.sealed_details("INC-0002") is None


@pytest.mark.parametrize(
    "details, rule",
    [
        ({"v": 1, "description": "no salt"}, "details.malformed"),
        ({"v": 2, "salt": "AAAAAAAAAAAAAAAAAAAAAA", "description": "x"}, "details.malformed"),
        ({"v": 1, "salt": "c2hvcnQ", "description": "short salt"}, "details.malformed"),
        ({"v": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA", "description": ""}, "details.malformed"),
        ({"v": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA", "description": "x", "extra": 1}, "details.malformed"),
        ({"v": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA", "description": "x", "gps": {"lat": "91", "lon": "0"}},
         "details.malformed"),
        (["not", "an", "object"], "details.malformed"),
        ("a string", "details.malformed"),
    ],
)
def test_malformed_details_are_400(world: RiskWorld, details: Any, rule: str) -> None:
    problem_of(upload(world, details=details), 400, rule)
    assert world.ledger.store.read_sealed_details("INC-0001") == []


def test_bad_uploads_are_4xx_never_500(world: RiskWorld) -> None:
    put = world.http.put
    problem_of(put("/v1/incidents/INC-0001/details", content=b"{not json",
                   headers={"content-type": "application/json"}), 400, "request.malformed_json")
    problem_of(put("/v1/incidents/INC-0001/details", content=b'{"v": 1.5}',
                   headers={"content-type": "application/json"}), 400, "request.malformed_json")
    problem_of(put("/v1/incidents/INC-0001/details", content=b'{"v":1,"v":1}',
                   headers={"content-type": "application/json"}), 400, "request.malformed_json")
    problem_of(put("/v1/incidents/INC-0001/details", content=b"<xml/>", headers={"content-type": "text/xml"}),
               415, "request.media_type")
    huge = {**world.details, "notes": "x" * (70 * 1024)}
    problem_of(upload(world, details=huge), 413, "request.too_large")
    problem_of(upload(world, "inc-0001"), 400, "incident.invalid_id")
    problem_of(upload(world, "I"), 400, "incident.invalid_id")
    problem_of(world.http.post("/v1/incidents/INC-0001/details", json=world.details), 405, "method_not_allowed")
    assert world.ledger.store.read_sealed_details("INC-0001") == []


def test_both_transports_upload_details(world: RiskWorld) -> None:
    local = LocalTransport(world.ledger)
    with pytest.raises(LedgerError) as refused:
        local.put_details("INC-0001", {**world.details, "description": "something else"})
    assert (refused.value.status, refused.value.rule) == (409, "details.mismatch")
    with pytest.raises(LedgerError) as unknown:
        local.put_details("INC-0404", world.details)
    assert (unknown.value.status, unknown.value.rule) == (404, "incident.unknown")
    with pytest.raises(LedgerError) as malformed:
        world.clients["monitor"].transport.put_details("INC-0001", {"v": 1})
    assert (malformed.value.status, malformed.value.rule) == (400, "details.malformed")
    expected = {"incident": "INC-0001", "details_sha256": commitment(world.details)}
    assert world.clients["monitor"].transport.put_details("INC-0001", world.details) == expected
    assert local.put_details("INC-0001", world.details) == expected


# --- who sees what (16.4) --------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", [OPERATOR, "monitor", "auditor", SITE, "coop", "helpers"])
def test_authorised_readers_get_the_details(world: RiskWorld, reader: str) -> None:
    """operator, monitor, auditor (every incident); the site; an action owner (coop: A1); the referred partner."""
    before = world.get("/v1/incidents/INC-0001", reader)
    assert before.status_code == 200, before.text
    assert before.json()["access"] == "authorised" and before.json()["details"] is None  # not uploaded yet
    assert upload(world).status_code == 200
    response = world.get("/v1/incidents/INC-0001", reader)
    assert response.status_code == 200, response.text
    document = response.json()
    assert (document["access"], document["reader"]) == ("authorised", reader)
    assert document["details"] == world.details
    assert commitment(document["details"]) == document["details_sha256"]  # the reader's own check
    assert "private" in response.headers["cache-control"] and "Authorization" in response.headers["vary"]


@pytest.mark.parametrize("reader", [None, "refiner", "trader", "saemape"])
def test_everyone_else_gets_the_public_form(world: RiskWorld, reader: str | None) -> None:
    assert upload(world).status_code == 200
    response = world.get("/v1/incidents/INC-0001", reader)
    assert response.status_code == 200, response.text
    document = response.json()
    assert (document["access"], document["reader"]) == ("public", reader)
    assert "details" not in document
    assert world.details["description"] not in response.text and world.details["salt"] not in response.text
    assert document["format"] == "tagledger/incident/v1"
    assert document["id"] == "INC-0001" and document["site"] == SITE
    assert (document["status"], document["severity"], document["red_flag"]) == ("confirmed", "high", True)
    assert document["annex_ii"] == [{"risk": "serious_abuses", "paragraphs": "1-2"}]
    assert document["details_sha256"] == commitment(world.details)
    assert [(a["action"], a["status"], a["overdue"]) for a in document["actions"]] == [
        ("A1", "open", True), ("A2", "implemented", False)]
    assert [e["type"] for e in document["events"]] == [
        "incident_reported", "incident_confirmed", "action_assigned", "action_assigned", "action_progress",
        "action_verified"]
    assert document["as_of"] == world.ledger.store.size()


def test_bad_signatures_are_401(world: RiskWorld) -> None:
    path = "/v1/incidents/INC-0001"
    now = datetime.now(timezone.utc)
    monitor_key = world.keys["monitor"]

    def expect_401(headers: dict[str, str], target: str = path) -> None:
        response = world.http.get(target, headers=headers)
        body = problem_of(response, 401, "read.unauthenticated")
        assert "details" not in body and response.headers["www-authenticate"] == "Tagledger-Signature"

    expect_401(signed_read_headers("monitor", monitor_key, path, time=now - timedelta(seconds=301)))  # expired
    expect_401(signed_read_headers("monitor", monitor_key, path, time=now + timedelta(seconds=330)))  # ahead
    forger = KeyPair.generate()
    forged = read_authorization("monitor", forger, path).replace(forger.kid, monitor_key.kid)
    expect_401({"Authorization": forged})  # the monitor's kid, another key's signature
    expect_401(signed_read_headers("monitor", world.keys["refiner"], path))  # the refiner's key, not the monitor's
    expect_401(signed_read_headers("nobody", monitor_key, path))  # an unknown organisation
    expect_401(signed_read_headers("monitor", monitor_key, "/v1/incidents/INC-0002"))  # signed another path
    expect_401(signed_read_headers("monitor", monitor_key, path), target=path + "?as_of=20")  # ... another query
    expect_401(signed_read_headers("monitor", monitor_key, path, method="PUT"))  # ... another method
    good = read_authorization("monitor", monitor_key, path)
    for header in (good.replace("Tagledger-Signature", "Bearer"), good + ', extra="1"',
                   good.replace(', sig="', ', sig="x'), good.replace('time="', 'time="yesterday'),
                   'Tagledger-Signature org="monitor"', "Tagledger-Signature", good.replace('"', "")):
        expect_401({"Authorization": header})
    # the good one, and the scheme name in another case
    assert world.get(path, "monitor").json()["access"] == "authorised"
    assert world.http.get(path, headers={"Authorization": good.replace("Tagledger-Signature", "tagledger-signature")
                                         }).json()["access"] == "authorised"


def test_a_revoked_key_is_401(world: RiskWorld) -> None:
    path = "/v1/sites/kalimbi/risk"
    assert world.get(path, "auditor").json()["access"] == "authorised"
    world.clients[OPERATOR].revoke_key("auditor", world.keys["auditor"].kid, "laptop stolen")
    problem_of(world.get(path, "auditor"), 401, "read.unauthenticated")
    # a new key works
    fresh = KeyPair.generate()
    world.clients[OPERATOR].add_key("auditor", fresh.public_key)
    world.keys["auditor"] = fresh
    assert world.get(path, "auditor").json()["access"] == "authorised"


# --- a site's risk (16.5) --------------------------------------------------------------------------------


def test_site_risk_public_view(world: RiskWorld) -> None:
    assert upload(world).status_code == 200
    response = world.get("/v1/sites/kalimbi/risk")
    assert response.status_code == 200, response.text
    document = response.json()
    assert set(document) == SITE_RISK_MEMBERS
    assert document["format"] == "tagledger/site-risk/v1"
    assert document["site"] == {"org": SITE, "name": "Kalimbi", "country": "CD",
                                "gps": {"lat": "-3.1", "lon": "28.2"}, "capacity_kg_per_month": 4000,
                                "operated_by": None}
    assert (document["access"], document["reader"]) == ("public", None)
    assert document["as_of"] == world.marks["end"]
    assert abs(parse_time(document["at"]) - datetime.now(timezone.utc)) < timedelta(seconds=60)
    # INC-0001 open red flag, A1 overdue; INC-0002 dismissed
    assert (document["status"], document["open_red_flags"], document["open_incidents"],
            document["overdue_actions"]) == ("red", 1, 1, 1)
    assert [i["id"] for i in document["incidents"]] == ["INC-0002", "INC-0001"]  # newest first
    assert all("details" not in i for i in document["incidents"])
    assert world.details["description"] not in response.text
    dismissed, red = document["incidents"]
    assert (dismissed["status"], dismissed["red_flag"], dismissed["annex_ii"]) == ("dismissed", False, [])
    assert dismissed["resolved_at"] is not None
    assert red["referred_to"] == "helpers" and red["people_affected"] == 2 and red["summary"] == "Minors carrying ore"
    assert red["evidence"] == [{"sha256": "ab" * 32, "media_type": "image/jpeg"}]
    overdue = {a["action"]: a for a in red["actions"]}
    assert overdue["A1"]["overdue"] is True and overdue["A1"]["due"] == format_time(world.months[1])[:19] + "Z"
    assert overdue["A2"]["overdue"] is False and overdue["A2"]["progress"] == 50 and overdue["A2"]["reports"] == 1
    # monitoring, newest first
    m0, m1, m2, m3 = (cycle(m) for m in world.months)
    assert [v["period"] for v in document["monitoring"]] == [m1, m0]
    assert [(v["price_ratio"], v["women_share"]) for v in document["monitoring"]] == [("0.800", None),
                                                                                        ("0.600", "0.200")]
    assert document["monitoring"][1]["concerns"] == ["price", "safety"]
    assert all(len(v["hash"]) == 64 and isinstance(v["seq"], int) for v in document["monitoring"])
    # the trend: one row per month from the first risk event to now
    rows = {row["month"]: row for row in document["months"]}
    assert list(rows) == [m0, m1, m2, m3]
    assert {k: rows[m0][k] for k in ("incidents_reported", "red_flags_reported", "red_flags_open", "actions_due",
                                     "actions_implemented", "actions_overdue", "price_ratio", "women_share")} == {
        "incidents_reported": 1, "red_flags_reported": 1, "red_flags_open": 1, "actions_due": 1,
        "actions_implemented": 0, "actions_overdue": 0, "price_ratio": "0.600", "women_share": "0.200"}
    assert (rows[m1]["actions_due"], rows[m1]["actions_implemented"], rows[m1]["actions_overdue"],
            rows[m1]["price_ratio"]) == (1, 1, 1, "0.800")
    assert (rows[m2]["incidents_reported"], rows[m2]["red_flags_reported"], rows[m2]["red_flags_open"]) == (1, 0, 1)
    assert (rows[m3]["incidents_reported"], rows[m3]["actions_overdue"], rows[m3]["price_ratio"]) == (0, 1, None)


@pytest.mark.parametrize("reader, shown", [
    (OPERATOR, {"INC-0001", "INC-0002"}), ("monitor", {"INC-0001", "INC-0002"}),
    ("auditor", {"INC-0001", "INC-0002"}), (SITE, {"INC-0001", "INC-0002"}),
    ("helpers", {"INC-0001"}), ("coop", {"INC-0001"}), ("refiner", set()), ("saemape", set()),
])
def test_site_risk_shows_details_to_authorised_readers_only(world: RiskWorld, reader: str, shown: set[str]) -> None:
    assert upload(world).status_code == 200
    response = world.get("/v1/sites/kalimbi/risk", reader)
    assert response.status_code == 200, response.text
    document = response.json()
    assert set(document) == SITE_RISK_MEMBERS
    assert (document["access"], document["reader"]) == ("authorised" if shown else "public", reader)
    with_details = {i["id"]: i["details"] for i in document["incidents"] if "details" in i}
    assert set(with_details) == shown
    if "INC-0001" in shown:
        assert with_details["INC-0001"] == world.details
    if "INC-0002" in shown:
        assert with_details["INC-0002"] is None  # never uploaded


def test_site_risk_as_of(world: RiskWorld) -> None:
    n = world.marks["after_a1"]
    path = f"/v1/sites/kalimbi/risk?as_of={n}"
    response = world.get(path, "monitor")
    assert response.status_code == 200, response.text
    document = response.json()
    received = read_entry(world.ledger.store.read_range(n - 1, n)[0].data).received
    assert document["as_of"] == n and document["at"] == received
    assert [i["id"] for i in document["incidents"]] == ["INC-0001"]
    (incident,) = document["incidents"]
    assert [a["action"] for a in incident["actions"]] == ["A1"]
    assert incident["events"][-1]["seq"] == n - 1
    assert document["monitoring"] == []
    assert (document["status"], document["overdue_actions"]) == ("red", 1)  # T is the entry's reception: now-ish
    # the incident view as of the same point, and before the incident existed
    view = world.get(f"/v1/incidents/INC-0001?as_of={n}", "coop").json()
    assert (view["as_of"], view["at"], len(view["actions"]), view["access"]) == (n, received, 1, "authorised")
    problem_of(world.get(f"/v1/incidents/INC-0002?as_of={n}"), 404, "incident.unknown")
    # the partner assigned nothing then, and was referred from the start: it sees INC-0001 as of then
    early = world.get(f"/v1/sites/kalimbi/risk?as_of={n}", "helpers").json()
    assert early["access"] == "authorised" and "details" in early["incidents"][0]
    # who may read is decided on the whole log: an owner assigned now sees the details as of before
    assert world.get(f"/v1/incidents/INC-0001?as_of={n}", "trader").json()["access"] == "public"
    world.clients[OPERATOR].assign_action("INC-0001", "A3", owner="trader", description="Pay miners in full",
                                          cycle=cycle(datetime.now(timezone.utc)))
    past = world.get(f"/v1/incidents/INC-0001?as_of={n}", "trader").json()
    assert (past["access"], past["details"], [a["action"] for a in past["actions"]]) == ("authorised", None, ["A1"])
    site_view = world.get(f"/v1/sites/kalimbi/risk?as_of={n}", "trader").json()
    assert site_view["access"] == "authorised" and "details" in site_view["incidents"][0]
    # before the site was registered, it is not a site
    problem_of(world.get("/v1/sites/kalimbi/risk?as_of=1"), 404, "site.unknown")


def test_site_risk_bad_requests_are_4xx(world: RiskWorld) -> None:
    get = world.http.get
    size = world.ledger.store.size()
    problem_of(get("/v1/sites/coop/risk"), 404, "site.unknown")  # an organisation, not a site
    problem_of(get("/v1/sites/nowhere/risk"), 404, "site.unknown")
    problem_of(get("/v1/sites/Bad_Id/risk"), 400, "site.invalid_id")
    problem_of(get(f"/v1/sites/kalimbi/risk?as_of={size + 1}"), 400, "log.range")
    problem_of(get("/v1/sites/kalimbi/risk?as_of=0"), 400, "request.invalid")
    problem_of(get("/v1/sites/kalimbi/risk?as_of=-3"), 400, "request.invalid")
    problem_of(get("/v1/sites/kalimbi/risk?as_of=abc"), 400, "request.invalid")
    problem_of(get("/v1/sites/kalimbi/risk?as_of=99999999999999999999999"), 400, "request.invalid")
    problem_of(get("/v1/incidents/INC-0404"), 404, "incident.unknown")
    problem_of(get("/v1/incidents/inc_1"), 400, "incident.invalid_id")
    problem_of(get(f"/v1/incidents/INC-0001?as_of={size + 1}"), 400, "log.range")
    assert get(f"/v1/sites/kalimbi/risk?as_of={size}").json()["as_of"] == size


def test_a_site_without_risk_events_is_green(world: RiskWorld) -> None:
    world.clients[OPERATOR].register_org("quiet-site", "Quiet", "site", "CD",
                                         [KeyPair.generate().public_key])
    document = world.get("/v1/sites/quiet-site/risk").json()
    assert (document["status"], document["open_red_flags"], document["open_incidents"],
            document["overdue_actions"]) == ("green", 0, 0, 0)
    assert document["incidents"] == [] and document["monitoring"] == [] and document["months"] == []


# --- the table is append-only in the database -----------------------------------------------------------


def test_sealed_details_are_append_only_in_the_database(store_url: str) -> None:
    store = open_store(store_url)
    row = StoredDetails("INC-0001", sha256_hex(b'{"v":1}'), b'{"v":1}', "2026-12-01T00:00:00.000000Z")
    try:
        assert store.insert_sealed_details(row) is True
        assert store.insert_sealed_details(row) is False  # insert-if-absent: the same key again changes nothing
        other = StoredDetails("INC-0001", row.sha256, b'{"v":2}', "2026-12-02T00:00:00.000000Z")
        assert store.insert_sealed_details(other) is False
        statements = ["UPDATE tagledger_sealed_details SET details = details",
                      "UPDATE tagledger_sealed_details SET incident = 'INC-0002'",
                      "DELETE FROM tagledger_sealed_details"]
        if store.backend == "postgres":
            statements.append("TRUNCATE tagledger_sealed_details")
        for statement in statements:
            with pytest.raises((sqlite3.DatabaseError, psycopg.Error), match="append-only"):
                raw_execute(store_url, statement)
        assert store.read_sealed_details("INC-0001") == [row]
        assert store.read_sealed_details("INC-0002") == []
    finally:
        store.close()


def test_the_service_refuses_a_sealed_details_table_without_its_triggers(store_url: str) -> None:
    open_store(store_url).close()
    if store_url.startswith("sqlite"):
        raw_execute(store_url, "DROP TRIGGER tagledger_sealed_details_no_delete")
        match = "tagledger_sealed_details: no trigger refusing DELETE"
    else:
        raw_execute(store_url, "DROP TRIGGER tagledger_sealed_details_no_truncate ON tagledger_sealed_details")
        match = "tagledger_sealed_details: no enabled trigger refusing TRUNCATE"
    with pytest.raises(SchemaError, match=match):
        open_store(store_url)
