"""The demo data set (`ledger.demo`), loaded in-process into fresh SQLite ledgers through the signed write path."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import ledger.client.signer as signer_module
from domain.custody import Status, issued_tags
from domain.risk import RiskBook
from ledger.client import LocalTransport, Signer
from ledger.demo import DEMO_DAYS, DemoAlreadyLoaded, DemoReport, load_demo
from ledger.entries import Entry, read_entry
from ledger.genesis import GenesisKeys, create_ledger
from ledger.keys import KeyPair
from ledger.projection import CustodyProjection
from ledger.service import Ledger
from verification.encoding import parse_time
from verification.replay import replay_sequential
from verification.sealed_details import commitment

OPERATOR = "itsci"
TAGS_PER_SITE = 12


def _open_with_genesis(url: str, monkeypatch: pytest.MonkeyPatch | None, *, age: timedelta) -> tuple[Ledger, Signer]:
    """A fresh ledger whose genesis (signed by the operator's root key) is `age` old.

    `create_ledger` takes no time: it signs the genesis "now". No event can be older than the key that signs it,
    so for a realistic two-month calendar the genesis must be older than that: the signer's clock is moved back
    while the genesis is made.
    """
    ledger = Ledger.open(url)
    keys = GenesisKeys(KeyPair.generate(), KeyPair.generate())
    if age and monkeypatch is not None:
        real = datetime

        class _Past(datetime):
            @classmethod
            def now(cls, tz=None):  # noqa: ANN001, ANN206 - datetime's signature
                return real.now(tz) - age

        with monkeypatch.context() as patch:
            patch.setattr(signer_module, "datetime", _Past)
            _create(ledger, keys)
    else:
        _create(ledger, keys)
    return ledger, Signer(OPERATOR, keys.root)


def _create(ledger: Ledger, keys: GenesisKeys) -> None:
    create_ledger(ledger, name="tagledger demo", operator=OPERATOR, operator_name="ITSCI Programme",
                  country="GB", log_key_name="tagledger.demo/log", keys=keys)


def _entries(ledger: Ledger) -> Iterator[Entry]:
    for stored in ledger.store.iter_all():
        yield read_entry(stored.data)


def _triples(ledger: Ledger) -> list[tuple[str, str, str]]:
    return [(e.body["type"], e.body["stream"], e.body["actor"]) for e in _entries(ledger)]


@pytest.fixture
def loaded(tmp_sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Ledger, DemoReport]]:
    ledger, operator = _open_with_genesis(tmp_sqlite_url, monkeypatch, age=timedelta(days=DEMO_DAYS + 1))
    try:
        report = load_demo(LocalTransport(ledger), operator, seed=7, tags_per_site=TAGS_PER_SITE)
        yield ledger, report
    finally:
        ledger.close()


def test_report_counts_match_the_ledger(loaded: tuple[Ledger, DemoReport]) -> None:
    ledger, report = loaded
    entries = list(_entries(ledger))
    assert ledger.store.size() == len(entries) == report.total + 1  # + the genesis, recorded by the caller
    assert entries[0].body["type"] == "ledger_created"
    assert dict(Counter(e.body["type"] for e in entries[1:])) == report.counts

    counts = report.counts
    assert counts["org_registered"] == sum(len(ids) for role, ids in report.orgs.items() if role != "operator")
    assert counts["tags_issued"] == 7  # five sites, the comptoir's lot tags, the exporter's container tags
    assert counts["tag_attached"] >= 5 * (TAGS_PER_SITE - 2)
    assert counts["custody_dispatched"] > counts["custody_received"] > counts["tag_attached"]
    assert counts["lot_formed"] >= 2 and counts["lot_split"] >= 1 and counts["tag_consumed"] >= 1
    assert counts["tag_voided"] == counts["key_added"] == counts["key_revoked"] == 1


def test_organisations_and_keys(loaded: tuple[Ledger, DemoReport]) -> None:
    ledger, report = loaded
    registry = ledger.registry()
    roles = {role: len(ids) for role, ids in report.orgs.items()}
    assert roles["operator"] == 1 and roles["site"] in (4, 5) and roles["cooperative"] in (1, 2)
    assert roles["trader"] in (2, 3) and roles["processor"] == roles["exporter"] == roles["refiner"] == 1
    assert roles["monitor"] == roles["auditor"] == roles["partner"] == 1 and roles["authority"] == 3
    countries = {registry.orgs[org].country for ids in report.orgs.values() for org in ids}
    assert {"CD", "RW"} <= countries
    for site in report.orgs["site"]:
        record = registry.orgs[site]
        assert record.gps and record.capacity_kg_per_month and record.operated_by in report.orgs["cooperative"]
    (refiner,) = report.orgs["refiner"]
    assert registry.orgs[refiner].rmi_cid and registry.orgs[refiner].country not in {"CD", "RW"}

    # every demo organisation's current key is registered and valid; the lost one is revoked
    assert set(report.keys) == {org for role, ids in report.orgs.items() if role != "operator" for org in ids}
    for org, pair in report.keys.items():
        key = registry.key_of(org, pair.kid)
        assert key is not None and key.revoked_seq is None
    rotation = report.key_rotation
    old = registry.key_of(rotation.org, rotation.old_kid)
    assert old is not None and old.revoked_seq is not None
    assert old.revoked_effective == parse_time(rotation.effective)
    assert report.revoked_keys[rotation.org].kid == rotation.old_kid
    signed = [(parse_time(e.body["time"]), e.body["key"]) for e in _entries(ledger) if e.body["actor"] == rotation.org]
    assert {kid for _, kid in signed} == {rotation.old_kid, rotation.new_kid}  # both keys were used ...
    assert all(kid == rotation.new_kid for when, kid in signed if when >= old.revoked_effective)  # ... in turn


def test_the_fraud_attempt_was_refused_and_changed_nothing(loaded: tuple[Ledger, DemoReport]) -> None:
    ledger, report = loaded
    rejected = report.rejected
    assert rejected.rule == "tag.finished"
    assert rejected.status == 422 and rejected.unchanged and rejected.tag in rejected.detail
    assert rejected.tag == report.examples["fraud_bag"]
    # nothing of it reached the log: the bag's history ends with its merge into a lot
    view = ledger.tag(rejected.tag)
    assert view is not None and view.state.status == Status.MERGED
    assert view.entries[-1].body["type"] == "lot_formed"
    assert not any(e.body["actor"] == rejected.actor and e.body["type"] == "custody_dispatched"
                   and e.seq > view.entries[-1].seq for e in view.entries)
    assert ledger.store.size() == report.total + 1


def test_example_tags_tell_the_story(loaded: tuple[Ledger, DemoReport]) -> None:
    ledger, report = loaded
    ex = report.examples
    registry = ledger.registry()

    bag = ledger.tag(ex["consumed_bag"])
    assert bag is not None and bag.state.status == Status.MERGED and bag.state.lot == ex["consumed_lot"]
    lot = ledger.tag(ex["consumed_lot"])
    assert lot is not None and lot.state.status == Status.CONSUMED
    assert registry.role_of(lot.state.holder) == "refiner"
    sites = {origin["site"] for origin in lot.origins}
    assert len(sites) >= 2 and bag.state.origin["site"] in sites
    assert ex["consumed_bag"] in {origin["tag"] for origin in lot.origins}
    assert len({origin["mineral"] for origin in lot.origins}) == 1  # lots are made per mineral

    split = ledger.tag(ex["split_lot"])
    assert split is not None and split.state.status == Status.SPLIT and len(split.state.outputs) == 2
    assert ex["split_output"] in split.state.outputs
    output = ledger.tag(ex["split_output"])
    assert output is not None and output.state.parent == ex["split_lot"] and output.origins

    voided = ledger.tag(ex["voided"])
    assert voided is not None and voided.state.status == Status.VOIDED and voided.state.void_reason == "stolen"
    assert voided.entries[-1].body["data"]["note"]

    held = ledger.tag(ex["in_custody"])
    assert held is not None and held.state.status == Status.IN_CUSTODY
    assert registry.role_of(held.state.holder) in {"site", "cooperative", "trader", "processor"}
    moving = ledger.tag(ex["in_transit"])
    assert moving is not None and moving.state.status == Status.IN_TRANSIT
    unused = ledger.tag(ex["unused"])
    assert unused is not None and unused.state.status == Status.ISSUED

    summary = report.summary()
    assert f"tagledger tag {ex['consumed_bag']}" in summary and "tag.finished" in summary


def test_every_tag_verifies_and_the_calendar_is_realistic(loaded: tuple[Ledger, DemoReport]) -> None:
    ledger, report = loaded
    entries = list(_entries(ledger))
    tags = [t for e in entries if e.body["type"] == "tags_issued" for t in issued_tags(e.body["data"])]
    assert len(tags) >= 5 * TAGS_PER_SITE
    statuses: Counter[str] = Counter()
    for tag in tags:
        view = ledger.tag(tag)
        assert view is not None
        assert view.problems == [], (tag, view.problems)
        statuses[str(view.state.status)] += 1
    assert statuses["voided"] == 1
    assert statuses["merged"] > 0 and statuses["consumed"] > 0 and statuses["in_transit"] > 0

    # bags: minerals by region, masses of artisanal bags, prices on some
    sites = {org: ledger.registry().orgs[org] for org in report.orgs["site"]}
    attached = [e.body["data"] for e in entries if e.body["type"] == "tag_attached"]
    for data in attached:
        country = sites[data["site"]].country
        assert data["mineral"] in ({"cobalt", "copper", "tin", "tantalum", "tungsten"} if country == "CD"
                                   else {"tin", "tantalum", "tungsten"})
        assert 20_000 <= data["mass_g"] <= 60_000
    assert 0 < sum("price_paid" in data for data in attached) < len(attached)
    assert {"cobalt", "tin"} <= {data["mineral"] for data in attached}

    # times: within the last DEMO_DAYS days, nothing in the future, spread over weeks, never going back per stream
    now = datetime.now(timezone.utc)
    times = [parse_time(e.body["time"]) for e in entries[1:]]
    assert not report.compressed
    assert all(now - timedelta(days=DEMO_DAYS, hours=2) <= t <= now - timedelta(minutes=59) for t in times)
    assert max(times) - min(times) > timedelta(days=DEMO_DAYS - 5)
    last: dict[str, datetime] = {}
    for entry, when in zip(entries[1:], times):
        for stream in (entry.body["stream"], *(entry.body.get("links") or {})):
            assert when >= last.get(stream, when)
            last[stream] = when


# --- the monitoring cycle: incidents, corrective actions, site visits, scans (protocol section 16) ---------


def _risk_book(ledger: Ledger) -> RiskBook:
    streams = sorted({e.body["stream"] for e in _entries(ledger)
                      if e.body["stream"].startswith(("incident:", "site:"))})
    return ledger.risk_book(streams)


def test_incidents_and_corrective_actions(loaded: tuple[Ledger, DemoReport]) -> None:
    ledger, report = loaded
    registry = ledger.registry()
    role = registry.role_of
    book = _risk_book(ledger)
    incidents = book.incidents
    assert set(incidents) == set(report.details)
    assert Counter(i.status for i in incidents.values()) == {"reported": 1, "confirmed": 3, "dismissed": 1,
                                                            "closed": 2}
    assert dict(Counter(i.status for i in incidents.values())) == report.risk["by_status"]
    assert {"child_labour", "health_safety", "armed_groups", "governance", "chain_of_custody"} <= {
        i.category for i in incidents.values()}
    assert {i.site for i in incidents.values()} == set(report.orgs["site"])  # every site has at least one

    # child labour in its worst forms, referred to the child-protection partner: a red flag (Annex II)
    worst = incidents[report.risk_examples["worst_forms_incident"]]
    assert worst.category == "child_labour" and worst.worst_forms is True and worst.red_flag
    assert worst.annex_ii == ("serious_abuses",) and role(worst.referred_to or "") == "partner"
    armed = incidents[report.risk_examples["overdue_incident"]]
    assert armed.category == "armed_groups" and armed.red_flag and armed.status == "confirmed"
    assert armed.site == report.risk_examples["red_flag_site"]
    dismissed = incidents[report.risk_examples["dismissed_incident"]]
    assert dismissed.status == "dismissed" and dismissed.resolved_at and not dismissed.actions

    # actions: owners of every kind, monthly cycles (calendar months, never before the assignment's month)
    actions = [(i, a) for i in incidents.values() for a in i.actions.values()]
    assert len(actions) == report.risk["actions"] >= 8
    assert {"site", "cooperative", "trader", "authority", "partner"} <= {role(a.owner) for _, a in actions}
    entries = list(_entries(ledger))
    for entry in entries:
        body = entry.body
        if body["type"] == "action_assigned":
            assert body["actor"] == OPERATOR and body["data"]["cycle"] >= body["time"][:7]
        elif body["type"] in {"incident_reported", "incident_confirmed", "action_verified", "site_monitored"}:
            assert role(body["actor"]) == "monitor"
        elif body["type"] == "action_progress":
            incident = incidents[body["stream"].removeprefix("incident:")]
            assert body["actor"] == incident.actions[body["data"]["action"]].owner
    progress = [e.body["data"] for e in entries if e.body["type"] == "action_progress"]
    assert sum(bool(d.get("evidence")) for d in progress) >= 5
    assert all(len(item["sha256"]) == 64 and item["media_type"] for d in progress for item in d.get("evidence", []))

    # some implemented (their incidents closed), some not implemented, some open and overdue at the end
    now = datetime.now(timezone.utc)
    implemented = [(i, a) for i, a in actions if a.status == "implemented"]
    assert len(implemented) == report.risk["implemented"]
    closed = [i for i in incidents.values() if i.status == "closed"]
    assert closed and all(i.remediated and i.actions for i in closed)
    assert {i.incident for i, _ in implemented} >= {i.incident for i in closed}
    verdicts = [e.body["data"]["outcome"] for e in entries if e.body["type"] == "action_verified"]
    assert "not_implemented" in verdicts and "implemented" in verdicts
    overdue = sorted(f"{i.incident}/{a.action}" for i, a in actions if a.overdue_at(now))
    assert overdue and sorted(report.risk["overdue"]) == sorted(
        f"{i.incident}/{a.action}" for i, a in actions if a.overdue_at(parse_time(report.end)))
    assert any(o.startswith(f"{armed.incident}/") for o in overdue)
    assert all(i.is_open for i, a in actions if a.overdue_at(now))
    assert any(a.status == "open" and not a.overdue_at(now) for _, a in actions)  # due after the demo's end
    assert any(a.last_verification == "not_implemented" and a.status == "open" for _, a in actions)

    summary = report.summary()
    assert "Risk and remediation: 7 incidents" in summary and f"/v1/sites/{armed.site}/risk" in summary


def test_sealed_details_are_uploaded_and_match_their_commitments(loaded: tuple[Ledger, DemoReport]) -> None:
    ledger, report = loaded
    incidents = _risk_book(ledger).incidents
    assert len(report.details) == len(incidents) == 7
    for incident_id, incident in incidents.items():
        stored = ledger.sealed_details(incident_id)
        assert stored is not None, incident_id
        assert stored == report.details[incident_id]
        assert commitment(stored) == incident.details_sha256
        assert stored["description"] and stored["gps"] and len(stored["salt"]) >= 22
        assert stored["description"] != incident.summary  # the public summary is not the sealed description
    # the log carries the commitment only, never the description
    raw = b"".join(stored.data for stored in ledger.store.iter_all())
    assert all(details["description"].encode() not in raw for details in report.details.values())


def test_each_site_is_monitored_every_month(loaded: tuple[Ledger, DemoReport]) -> None:
    ledger, report = loaded
    book = _risk_book(ledger)
    start, end = parse_time(report.start), parse_time(report.end)
    months: list[str] = []
    moment = start + timedelta(days=2)
    while moment <= end - timedelta(days=1):
        month = moment.strftime("%Y-%m")
        if month not in months:
            months.append(month)
        moment += timedelta(hours=12)
    assert len(months) >= 2
    total = 0
    for site in report.orgs["site"]:
        visits = book.visits[site]
        periods = [v.period for v in visits]
        assert len(periods) == len(set(periods)) and set(months) <= set(periods), (site, periods, months)
        for visit in visits:
            assert visit.ref.time[:7] == visit.period and visit.ref.actor == report.orgs["monitor"][0]
            data = visit.data
            paid, reference = data["price_paid"], data["reference_price"]
            assert paid["currency"] == reference["currency"] == "USD"
            assert 0.4 * reference["minor_per_kg"] < paid["minor_per_kg"] < reference["minor_per_kg"]
            assert data["reference_source"] and data["concerns"]
            assert data["workforce"]["women"] > 0 and data["workforce"]["men"] > data["workforce"]["women"]
            assert data["minors_observed"] >= 0
        total += len(visits)
    assert total == report.risk["site_visits"] == report.counts["site_monitored"]
    # minors are seen where the child labour incident is, and nowhere else
    minors = {site: max(v.data["minors_observed"] for v in book.visits[site]) for site in report.orgs["site"]}
    worst = _risk_book(ledger).incidents[report.risk_examples["worst_forms_incident"]]
    assert minors.pop(worst.site) > 0 and set(minors.values()) == {0}


def test_authorities_scan_tags_and_a_reused_tag_is_flagged(loaded: tuple[Ledger, DemoReport]) -> None:
    ledger, report = loaded
    ledger.start_projection(follow=False)
    assert ledger.flags is not None
    ledger.flags.catch_up()
    registry = ledger.registry()
    scans = [e for e in _entries(ledger) if e.body["type"] == "tag_scanned"]
    assert len(scans) == report.counts["tag_scanned"] == report.risk["scans"] >= 4
    assert all(registry.role_of(e.body["actor"]) == "authority" and e.body["data"]["gps"] for e in scans)
    assert {"customs", "inspection"} <= {e.body["data"]["purpose"] for e in scans}

    reused = report.examples["reused_tag"]
    (suspicious,) = [e for e in scans if e.body["stream"] == f"tag:{reused}"]
    view = ledger.tag(reused)
    assert view is not None and view.state.status == Status.MERGED
    merged = next(e for e in view.entries if e.body["type"] == "lot_formed")
    assert merged.seq < suspicious.seq  # seen after its life was over ...
    site = registry.orgs[view.state.origin["site"]].gps
    assert site is not None
    gps = suspicious.body["data"]["gps"]
    assert abs(float(gps["lat"]) - float(site["lat"])) > 5  # ... some 1,000 km from its mine site
    codes = {f["code"] for f in view.flags if not f["inherited"]}
    assert "tag.reuse" in codes
    assert any(item["hash"] == suspicious.hash for f in view.flags for item in f["evidence"])
    assert report.examples["reused_tag"] != report.examples["fraud_bag"]

    # the plausible scans raise nothing; the example tags of a clean chain stay clean
    for entry in scans:
        tag = entry.body["stream"].removeprefix("tag:")
        if tag != reused:
            own = [f for f in ledger.tag(tag).flags if not f["inherited"]]
            assert own == [], (tag, own)
    for example in ("consumed_bag", "consumed_lot"):
        assert ledger.tag(report.examples[example]).flags == [], example


def test_the_demo_log_replays_with_the_auditor(loaded: tuple[Ledger, DemoReport]) -> None:
    ledger, report = loaded
    entries = [stored.data for stored in ledger.store.iter_all()]
    replayed = replay_sequential(entries)  # raises ReplayError at the first entry that breaks a rule
    assert replayed.size == len(entries) == report.total + 1 and replayed.stopped is None
    projection = CustodyProjection(ledger.store)
    projection.catch_up()
    assert replayed.digest == projection.digest()


def test_same_seed_same_story(tmp_sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sequences = []
    for url in (tmp_sqlite_url, f"sqlite:///{tmp_path / 'second.db'}"):
        ledger, operator = _open_with_genesis(url, monkeypatch, age=timedelta(days=DEMO_DAYS + 1))
        try:
            report = load_demo(LocalTransport(ledger), operator, seed=11, tags_per_site=10)
            sequences.append((_triples(ledger), report.examples, report.rejected.rule, report.counts))
        finally:
            ledger.close()
    first, second = sequences
    assert first[0] == second[0]
    assert first[1:] == second[1:]


def test_a_recent_genesis_squeezes_the_story_in(tmp_sqlite_url: str) -> None:
    """`tagledger demo` right after `init`: the genesis is seconds old, yet the demo loads (squeezed after it)."""
    ledger, operator = _open_with_genesis(tmp_sqlite_url, None, age=timedelta(0))
    try:
        genesis = parse_time(next(_entries(ledger)).body["time"])
        report = load_demo(LocalTransport(ledger), operator, tags_per_site=8)
        assert report.compressed and "genesis" in report.summary()
        assert ledger.store.size() == report.total + 1
        times = [parse_time(e.body["time"]) for e in _entries(ledger)]
        assert all(genesis <= t <= datetime.now(timezone.utc) for t in times)
        assert ledger.tag(report.examples["consumed_lot"]).state.status == Status.CONSUMED

        with pytest.raises(DemoAlreadyLoaded):
            load_demo(LocalTransport(ledger), operator, tags_per_site=8)
        assert ledger.store.size() == report.total + 1
    finally:
        ledger.close()


def test_arguments_are_checked(tmp_sqlite_url: str) -> None:
    ledger = Ledger.open(tmp_sqlite_url)
    try:
        with pytest.raises(ValueError, match="genesis"):
            load_demo(LocalTransport(ledger), Signer(OPERATOR, KeyPair.generate()))
        with pytest.raises(ValueError, match="tags_per_site"):
            load_demo(LocalTransport(ledger), Signer(OPERATOR, KeyPair.generate()), tags_per_site=2)
        assert ledger.store.size() == 0
    finally:
        ledger.close()


def test_the_refiner_s_rmap_input_report_over_the_demo(loaded: tuple[Ledger, DemoReport]) -> None:
    """The demo's refiner received and consumed lots from several sites, some with red flags: the RMAP input
    report lists them by mine, and its masses are the tag views' (protocol section 21)."""
    from ledger.rmap_report import parse_period, rmap_input_report, rows

    ledger, _ = loaded
    today = datetime.now(timezone.utc).date()
    report = rmap_input_report(ledger, "scheldt-refining", parse_period(str(today - timedelta(days=DEMO_DAYS + 2)),
                                                                        str(today)))
    assert report is not None and report["refiner"]["rmi_cid"] == "CID002158"
    assert report["totals"]["lots_received"] >= 2 and report["totals"]["lots_consumed"] >= 1
    assert report["totals"]["mines"] >= 2 and report["totals"]["red_flags"] >= 1
    for lot in report["lots"]:
        view = ledger.tag(lot["tag"], context=False)
        assert lot["mass_g"] == view.state.mass_g
        assert lot["bags"] == len(view.origins) == sum(o["bags"] for o in lot["origins"])
        assert lot["chain_complete"] and not lot["problems"]
    assert sum(r["attached_mass_g"] for r in rows(report)) == report["totals"]["attached_mass_g"]
    # nothing before the demo began
    early = parse_period(str(today - timedelta(days=3000)), str(today - timedelta(days=DEMO_DAYS + 2)))
    assert rmap_input_report(ledger, "scheldt-refining", early)["lots"] == []
    assert rmap_input_report(ledger, "itsci", early) is None  # the operator is not a refiner
def test_the_tour_shows_overdue_actions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's tour: `tagledger demo` on a fresh home (as after `make serve`: a development genesis dated
    back) records corrective actions that are overdue now, as GET /v1/sites/{site}/risk shows them, and says so."""
    from ledger.cli import main

    home = tmp_path / "home"
    assert main(["--home", str(home), "demo", "--tags-per-site", "8"]) == 0
    printed = capsys.readouterr().out
    ledger = Ledger.open(f"sqlite:///{home / 'ledger.db'}")
    try:
        now = datetime.now(timezone.utc)
        overdue = {}
        for site in ("nyabibwe-site", "kalando-zea", "kambove-sud", "gatumba-site", "nyakabingo-site"):
            book = ledger.site_risk_book(site)
            overdue.update({f"{i.incident}/{a.action}": i for i in book.incidents.values()
                            for a in i.actions.values() if a.overdue_at(now)})
        assert overdue, "the tour promises overdue corrective actions"
        armed = next(i for i in overdue.values() if i.category == "armed_groups")
        assert armed.site == "nyabibwe-site" and armed.red_flag
        late = re.search(r"corrective actions \((\d+) implemented, (\d+) overdue\)", printed)
        assert late and int(late.group(2)) == len(overdue)
        assert "an action overdue" in printed and "No corrective action is overdue yet" not in printed
    finally:
        ledger.close()


def test_a_squeezed_story_says_why_nothing_is_overdue_yet(tmp_sqlite_url: str) -> None:
    """After a recent genesis nothing can be overdue (an action cannot be due in a month already past, and the
    whole story fits in this month): the summary says so, when the first actions fall due, and how to get them."""
    ledger, operator = _open_with_genesis(tmp_sqlite_url, None, age=timedelta(0))
    try:
        report = load_demo(LocalTransport(ledger), operator, tags_per_site=8)
        end = parse_time(report.end)
        if report.risk["overdue"]:  # the squeezed story crossed a month's end: actions of last month are overdue
            assert end.day == 1 or parse_time(report.start).month != end.month
            return
        summary = report.summary()
        assert "No corrective action is overdue yet" in summary and "make serve" in summary
        first_due = report.risk["first_due"]
        assert first_due[:10] in summary and parse_time(first_due) > end
    finally:
        ledger.close()
