"""A small custody story for the verification page tests (tests/integration/test_page.py, tests/browser/).

Recorded over real HTTP on a `live_ledger` (every event signed by the acting organisation):

* KAL-000001: attached at Kalimbi, dispatched to the cooperative, received: authentic, in custody;
* KAL-000002, KAL-000003: delivered to the processor, merged into LOT-0001, which goes to the refiner and is
  consumed (the bags are `merged`, the lot `consumed`);
* KAL-000004: attached, then voided (stolen);
* KAL-000005: attached, dispatched to the trader whose name holds markup, received by it; the operator then
  revokes the trader's key with an `effective` time before that reception (a backdated revocation, the
  `custody.revoked_key` fraud flag).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from verification.encoding import format_time

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
