"""A small custody story for the verification page tests (tests/integration/test_page.py, tests/browser/).

Recorded over real HTTP on a `live_ledger` (every event signed by the acting organisation):

* KAL-000001: attached at Kalimbi, dispatched to the cooperative, received: authentic, in custody;
* KAL-000002, KAL-000003: delivered to the processor, merged into LOT-0001, which goes to the refiner and is
  consumed (the bags are `merged`, the lot `consumed`);
* KAL-000004: attached, then voided (stolen);
* KAL-000005: attached, dispatched to the trader whose name holds markup, received by it; the operator then
  revokes the trader's key with an `effective` time before that reception (a backdated revocation, the
  `custody.revoked_key` fraud flag).

`build_risk_story` (only for the risk tests, after `build_page_world`) adds a field monitor's incidents at Kalimbi
(protocol 16): INC-0001 (armed groups, high: a red flag) confirmed, action A1 verified implemented and A2 verified
not implemented, so still open; INC-0002 (worst forms of child labour: a red flag) remediated and closed;
INC-0003 (environment, low) dismissed with its action cancelled. All three occurred when KAL-000002 was tagged, so
they fall in the windows of every Kalimbi bag and of LOT-0001. A second site, Rubaya, has no incident: RUB-000001
stays there; KAL-000006 and RUB-000002 are merged into LOT-0002 (two origin sites).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from verification.encoding import format_time
from verification.sealed_details import commitment, new_details

SITE, COOP, TRADER, PROCESSOR, REFINER = "kalimbi-site", "nyabibwe-coop", "evil-trader", "goma-processing", "thaisarco"
SITE_NAME = "Kalimbi mine site"
COOP_NAME = "Coopérative de Nyabibwe"
TRADER_NAME = "Bukavu <script>alert('x')</script> & Sons"
REFINER_NAME = "Thaisarco smelter"
GPS = {"lat": "-2.1234567", "lon": "28.7654321"}
IN_CUSTODY, MERGED_A, MERGED_B, VOIDED, FLAGGED = (f"KAL-{i:06d}" for i in range(1, 6))
LOT = "LOT-0001"
UNKNOWN = "FAKE-0001"


@dataclass
class PageWorld:
    trader_kid: str


def build_page_world(live) -> PageWorld:
    site = live.register(SITE, "site", name=SITE_NAME, gps=GPS, capacity_kg_per_month=12_000)
    coop = live.register(COOP, "cooperative", name=COOP_NAME)
    trader = live.register(TRADER, "trader", name=TRADER_NAME)
    processor = live.register(PROCESSOR, "processor", name="Goma processing plant")
    refiner = live.register(REFINER, "refiner", name=REFINER_NAME, country="TH", rmi_cid="CID001898")
    live.operator.issue_tags(SITE, prefix="KAL-", start=1, count=5, width=6)
    live.operator.issue_tags(PROCESSOR, tags=[LOT])

    masses = {IN_CUSTODY: 49_800, MERGED_A: 10_000, MERGED_B: 12_500, VOIDED: 9_000, FLAGGED: 8_000}
    for bag, grams in masses.items():
        site.attach(bag, mineral="tin", ore="cassiterite", mass_g=grams, pit="Pit 7", gps=GPS)

    site.dispatch(IN_CUSTODY, COOP, mass_g=49_800, location="road N2")
    coop.receive(IN_CUSTODY, mass_g=49_750, location="Nyabibwe warehouse")

    for bag in (MERGED_A, MERGED_B):
        site.dispatch(bag, PROCESSOR)
        processor.receive(bag, mass_g=masses[bag])
    processor.merge(LOT, [MERGED_A, MERGED_B], mass_g=22_500)
    processor.dispatch(LOT, REFINER, mass_g=22_500)
    refiner.receive(LOT, mass_g=22_400)
    refiner.consume(LOT, mass_g=22_400, product="tin ingot")

    site.void(VOIDED, "stolen", note="taken at the roadblock")

    before = format_time(datetime.now(timezone.utc) - timedelta(seconds=2))
    site.dispatch(FLAGGED, TRADER)
    trader.receive(FLAGGED, mass_g=8_000, location="Bukavu")
    kid = live.orgs[TRADER].keys.kid
    live.operator.revoke_key(TRADER, kid, "key found on a forged export certificate", effective=before)
    return PageWorld(trader_kid=kid)


MONITOR, OTHER_SITE = "field-monitor", "rubaya-site"
OTHER_SITE_NAME = "Rubaya <b>mine</b> site"
QUIET, MIXED_LOT, MIXED_KAL, MIXED_RUB = "RUB-000001", "LOT-0002", "KAL-000006", "RUB-000002"
RED_OPEN, RED_REMEDIATED, DISMISSED = "INC-0001", "INC-0002", "INC-0003"
INCIDENT_SUMMARY = "Armed men <b>taxing</b> diggers at the pit & on the road"
ACTION_DONE = "Remove the checkpoint on the pit road"
ACTION_FAILED = "Stop buying from pit 3 <until cleared>"


def build_risk_story(live) -> None:
    monitor = live.register(MONITOR, "monitor", name="Field monitor")
    rubaya = live.register(OTHER_SITE, "site", name=OTHER_SITE_NAME, gps={"lat": "-1.6", "lon": "28.9"})
    site, coop = live.orgs[SITE].client, live.orgs[COOP].client
    processor = live.orgs[PROCESSOR].client
    live.operator.issue_tags(OTHER_SITE, prefix="RUB-", start=1, count=2, width=6)
    live.operator.issue_tags(SITE, prefix="KAL-", start=6, count=1, width=6)
    live.operator.issue_tags(PROCESSOR, tags=[MIXED_LOT])

    # the incidents occurred when KAL-000002 was tagged: inside the window of every Kalimbi bag and of LOT-0001
    occurred = live.http.get(f"/v1/tags/{MERGED_A}").json()["origins"][0]["attached_at"]
    cycle = datetime.now(timezone.utc).strftime("%Y-%m")

    def report(incident: str, **data: object) -> None:
        monitor.report_incident(incident, site=SITE, occurred_at=occurred,
                                details_sha256=commitment(new_details("sealed: names of the people involved")),
                                **data)

    report(RED_OPEN, category="armed_groups", severity="high", summary=INCIDENT_SUMMARY, people_affected=12)
    report(RED_REMEDIATED, category="child_labour", worst_forms=True, severity="medium")
    report(DISMISSED, category="environment", severity="low")

    # two bags tagged while the incidents are open, merged into a lot with ore of a quiet site
    rubaya.attach(QUIET, mineral="tantalum", ore="coltan", mass_g=7_000, pit="R1")
    rubaya.attach(MIXED_RUB, mineral="tin", ore="cassiterite", mass_g=6_000, pit="R2")
    site.attach(MIXED_KAL, mineral="tin", ore="cassiterite", mass_g=5_000, pit="Pit 7")
    for org, bag, grams in ((rubaya, MIXED_RUB, 6_000), (site, MIXED_KAL, 5_000)):
        org.dispatch(bag, PROCESSOR)
        processor.receive(bag, mass_g=grams)
    processor.merge(MIXED_LOT, [MIXED_KAL, MIXED_RUB], mass_g=11_000)

    monitor.confirm_incident(RED_OPEN)
    live.operator.assign_action(RED_OPEN, "A1", owner=SITE, description=ACTION_DONE, cycle=cycle)
    live.operator.assign_action(RED_OPEN, "A2", owner=COOP, description=ACTION_FAILED, cycle=cycle)
    site.report_progress(RED_OPEN, "A1", "checkpoint removed", percent=100)
    monitor.verify_action(RED_OPEN, "A1", "implemented")
    coop.report_progress(RED_OPEN, "A2", "still buying, fewer bags", percent=40)
    monitor.verify_action(RED_OPEN, "A2", "not_implemented")

    monitor.confirm_incident(RED_REMEDIATED)
    live.operator.assign_action(RED_REMEDIATED, "A1", owner=SITE, description="Children back to school",
                                cycle=cycle)
    monitor.verify_action(RED_REMEDIATED, "A1", "implemented")
    monitor.close_incident(RED_REMEDIATED, "children enrolled at school")

    live.operator.assign_action(DISMISSED, "A1", owner=SITE, description="Test the river water", cycle=cycle)
    monitor.dismiss_incident(DISMISSED, "the discoloured water came from upstream")
