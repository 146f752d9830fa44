"""`LedgerClient`: one method per thing an organisation records, each a single signed event.

Every verb fetches the current head of the streams it touches, signs with the organisation's own key and
submits. If someone else wrote to the stream first (409 `stream.conflict`), it re-reads the head and signs
again, a few times, so a refiner can record a transfer with one call. That definite refusal is the only reason
to sign again: when the answer is not definite (503, no answer, a timeout) the transport sends the same signed
bytes again (`ledger.client.retry`), so an event is never recorded twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ledger.client.signer import Signer
from ledger.client.transport import LedgerError, Transport

Time = datetime | str | None


class LedgerClient:
    def __init__(self, transport: Transport, signer: Signer, *, retries: int = 3):
        self.transport = transport
        self.signer = signer
        self.retries = retries

    # -- plumbing ---------------------------------------------------------------------------------

    def record(
        self,
        event_type: str,
        stream: str,
        data: dict[str, Any],
        *,
        time: Time = None,
        linked: list[str] | None = None,
        new_stream: bool = False,
    ) -> dict[str, Any]:
        """Sign and submit one event on `stream` (and `linked` streams); re-sign only on `stream.conflict`."""
        make: Callable[[], dict[str, Any]] = lambda: self.signer.envelope(  # noqa: E731
            event_type,
            stream,
            None if new_stream else self.transport.head(stream),
            data,
            time=time,
            links={s: self.transport.head(s) for s in linked} if linked else None,
        )
        for attempt in range(self.retries + 1):
            try:
                return self.transport.submit(make())
            except LedgerError as error:
                if error.rule != "stream.conflict" or new_stream or attempt == self.retries:
                    raise
        raise AssertionError("unreachable")

    # -- the operator -------------------------------------------------------------------------------

    def register_org(self, org: str, name: str, role: str, country: str, public_keys: list[str], *,
                     time: Time = None, **extra: Any) -> dict[str, Any]:
        data = {"name": name, "role": role, "country": country, "public_keys": public_keys, **extra}
        return self.record("org_registered", f"org:{org}", data, time=time, new_stream=True)

    def add_key(self, org: str, public_key: str, *, time: Time = None) -> dict[str, Any]:
        return self.record("key_added", f"org:{org}", {"public_key": public_key}, time=time)

    def revoke_key(self, org: str, kid: str, reason: str, *, effective: str | None = None,
                   time: Time = None) -> dict[str, Any]:
        data = {"key": kid, "reason": reason, "effective": effective}
        return self.record("key_revoked", f"org:{org}", data, time=time)

    def issue_tags(self, org: str, *, tags: list[str] | None = None, prefix: str | None = None,
                   start: int = 1, count: int = 0, width: int = 6, time: Time = None) -> dict[str, Any]:
        data: dict[str, Any] = {"tags": tags or None}
        if prefix is not None:
            data["ranges"] = [{"prefix": prefix, "start": start, "count": count, "width": width}]
        return self.record("tags_issued", f"org:{org}", data, time=time)

    # -- custody ------------------------------------------------------------------------------------

    def attach(self, tag: str, *, mineral: str, mass_g: int, pit: str, ore: str | None = None,
               gps: dict[str, str] | None = None, price_paid: dict[str, Any] | None = None,
               time: Time = None) -> dict[str, Any]:
        data = {"site": self.signer.org, "mineral": mineral, "ore": ore, "mass_g": mass_g, "pit": pit,
                "gps": gps, "price_paid": price_paid}
        return self.record("tag_attached", f"tag:{tag}", data, time=time)

    def dispatch(self, tag: str, to: str, *, mass_g: int | None = None, location: str | None = None,
                 time: Time = None) -> dict[str, Any]:
        return self.record("custody_dispatched", f"tag:{tag}", {"to": to, "mass_g": mass_g, "location": location},
                           time=time)

    def receive(self, tag: str, *, mass_g: int, location: str | None = None, time: Time = None) -> dict[str, Any]:
        return self.record("custody_received", f"tag:{tag}", {"mass_g": mass_g, "location": location}, time=time)

    def merge(self, lot: str, inputs: list[str], *, mass_g: int, time: Time = None) -> dict[str, Any]:
        return self.record("lot_formed", f"tag:{lot}", {"inputs": inputs, "mass_g": mass_g}, time=time,
                           linked=[f"tag:{t}" for t in inputs])

    def split(self, lot: str, outputs: dict[str, int], *, time: Time = None) -> dict[str, Any]:
        data = {"outputs": [{"tag": t, "mass_g": m} for t, m in outputs.items()]}
        return self.record("lot_split", f"tag:{lot}", data, time=time, linked=[f"tag:{t}" for t in outputs])

    def consume(self, tag: str, *, mass_g: int | None = None, product: str | None = None,
                time: Time = None) -> dict[str, Any]:
        return self.record("tag_consumed", f"tag:{tag}", {"mass_g": mass_g, "product": product}, time=time)

    def void(self, tag: str, reason: str, *, note: str | None = None, time: Time = None) -> dict[str, Any]:
        return self.record("tag_voided", f"tag:{tag}", {"reason": reason, "note": note}, time=time)

    def scan(self, tag: str, *, gps: dict[str, str], location: str | None = None, purpose: str | None = None,
             time: Time = None) -> dict[str, Any]:
        """Record that this organisation saw the physical tag here and now (any role, any tag status)."""
        data = {"gps": gps, "location": location, "purpose": purpose}
        return self.record("tag_scanned", f"tag:{tag}", data, time=time)

    # -- risk and remediation (protocol section 16) ---------------------------------------------------

    def report_incident(self, incident: str, *, site: str, category: str, severity: str, occurred_at: str,
                        details_sha256: str, time: Time = None, **optional: Any) -> dict[str, Any]:
        """A monitor reports an incident; `details_sha256` commits to the sealed details (`sealed_details`)."""
        data = {"site": site, "category": category, "severity": severity, "occurred_at": occurred_at,
                "details": {"sha256": details_sha256}, **optional}
        return self.record("incident_reported", f"incident:{incident}", data, time=time, new_stream=True)

    def confirm_incident(self, incident: str, *, time: Time = None, **optional: Any) -> dict[str, Any]:
        return self.record("incident_confirmed", f"incident:{incident}", dict(optional), time=time)

    def dismiss_incident(self, incident: str, reason: str, *, time: Time = None) -> dict[str, Any]:
        return self.record("incident_dismissed", f"incident:{incident}", {"reason": reason}, time=time)

    def close_incident(self, incident: str, resolution: str, *, time: Time = None) -> dict[str, Any]:
        return self.record("incident_closed", f"incident:{incident}", {"resolution": resolution}, time=time)

    def assign_action(self, incident: str, action: str, *, owner: str, description: str, cycle: str,
                      time: Time = None) -> dict[str, Any]:
        data = {"action": action, "owner": owner, "description": description, "cycle": cycle}
        return self.record("action_assigned", f"incident:{incident}", data, time=time)

    def report_progress(self, incident: str, action: str, note: str, *, percent: int | None = None,
                        evidence: list[dict[str, Any]] | None = None, time: Time = None) -> dict[str, Any]:
        data = {"action": action, "note": note, "percent": percent, "evidence": evidence}
        return self.record("action_progress", f"incident:{incident}", data, time=time)

    def verify_action(self, incident: str, action: str, outcome: str, *, note: str | None = None,
                      evidence: list[dict[str, Any]] | None = None, time: Time = None) -> dict[str, Any]:
        data = {"action": action, "outcome": outcome, "note": note, "evidence": evidence}
        return self.record("action_verified", f"incident:{incident}", data, time=time)

    def monitor_site(self, site: str, period: str, *, time: Time = None, **observed: Any) -> dict[str, Any]:
        """A monitor's monthly record of a site: prices paid and reference, workforce by sex, miners' concerns."""
        return self.record("site_monitored", f"site:{site}", {"period": period, **observed}, time=time)
