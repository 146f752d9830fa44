"""Checking a saved due-diligence report offline -- docs/protocol.md section 16.8.

A buyer saves the JSON report (`GET /v1/reports/due-diligence/{tag}`, `tagledger/dd-report/v1`) and hands it
to an auditor, who checks it without the ledger: ``tagledger verify-report FILE`` (or ``python -m
verification.dd_report FILE``), with this package only (the standard library and ``cryptography``).

:func:`verify_report` checks, in this order, and stops at the first problem (:class:`ReportError`, one line):

1. the format, and the signed checkpoint ``proofs.log.checkpoint`` with the log key the report carries
   (``proofs.log.key``; pin it with ``log_key``: a key learnt from the log's operator, ``GET /v1/log/key``);
2. every event of ``proofs.events`` (each tag of the chain) and ``proofs.risk_events`` (each incident listed):
   its envelope's structure and hash, its signature by the listed key of its actor, and its log entry's
   inclusion proof against the checkpoint (an event the checkpoint does not cover yet is a problem: save the
   report again after the next checkpoint, which comes within seconds);
3. each stream's events link up (each event names the previous one's hash as its stream's ``prev``, or in
   ``links`` for a merge): no event was dropped between the first and the last of a tag or an incident;
4. the facts the report states against the events they come from: each custody step (who, when, where, the
   tag's own mass), the input bags (site, mineral, pit, mass, price), the mass balance, every incident's public
   facts (category, worst forms, severity, status, dates, people affected, referral, evidence) and its
   corrective actions (owner, cycle, due date, status, progress, overdue at the report's time), and the OECD
   Step 3 recommendation (:mod:`verification.oecd_step3`) derived from them.

What a report cannot prove offline: that no event was added to a stream after its last listed one (that the
tag's story is not cut short). Compare with a later checkpoint (``GET /v1/log/proof/consistency``) or the
live tag view for that.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

from verification.checkpoint import CheckpointError, open_checkpoint
from verification.encoding import decode_public_key, key_id, parse_time
from verification.entry import encode_entry
from verification.envelope import Envelope, EnvelopeError, envelope_hash, issued_tags, prev_hashes, verify_signature
from verification.merkle import ProofError, leaf_hash, verify_inclusion
from verification.note import NoteError, parse_vkey
from verification.oecd_step3 import recommend

REPORT_FORMAT = "tagledger/dd-report/v1"
CUSTODY_FIELDS = ("to", "location", "gps", "inputs", "outputs", "reason", "product", "purpose")
ANNEX_II_PARAGRAPHS = {"serious_abuses": "1-2", "non_state_armed_groups": "3-4", "security_forces": "5-6",
                       "bribery_misrepresentation": "7-8", "money_laundering": "9-10", "taxes_fees_royalties": "11-13"}
ANNEX_II_OF_CATEGORY = {"child_labour": (), "health_safety": (), "forced_labour": ("serious_abuses",),
                        "armed_groups": ("non_state_armed_groups",), "security_forces": ("security_forces",),
                        "chain_of_custody": ("bribery_misrepresentation",), "environment": (),
                        "governance": ("bribery_misrepresentation", "money_laundering", "taxes_fees_royalties")}
"""Protocol 16.1."""


class ReportError(ValueError):
    """The saved report does not verify: the first problem found, in one line."""


@dataclass(frozen=True)
class Verified:
    tag: str
    checkpoint_size: int
    events: int
    incidents: int
    recommendation: str

    def describe(self) -> str:
        return (f"report for {self.tag} verifies: {self.events} signed events in the log of size "
                f"{self.checkpoint_size} (checkpoint signed by the log key), {self.incidents} "
                f"incident{'' if self.incidents == 1 else 's'}; every "
                f"fact checked against them; OECD Step 3: {self.recommendation}")


def _fail(message: str) -> ReportError:
    return ReportError(" ".join(message.split()))


def _get(obj: Any, *path: str | int) -> Any:
    for part in path:
        try:
            obj = obj[part]
        except (KeyError, IndexError, TypeError):
            raise _fail(f"the report has no {'/'.join(map(str, path))}") from None
    return obj


def _cycle_due(cycle: str) -> str:
    year, month = int(cycle[:4]), int(cycle[5:7])
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{year:04d}-{month:02d}-01T00:00:00Z"


def _ppm(part: int, whole: int) -> int | None:
    return None if whole == 0 else round(Fraction(part * 1_000_000, whole))


class _Checker:
    def __init__(self, report: dict[str, Any], log_key: str | None):
        self.report = report
        self.log_key = log_key
        self.bodies: dict[str, dict[str, Any]] = {}  # envelope hash -> body, once verified

    # -- 1. the checkpoint --------------------------------------------------------------------

    def checkpoint(self) -> None:
        if not isinstance(self.report, dict) or self.report.get("format") != REPORT_FORMAT:
            raise _fail(f"not a saved due-diligence report (format {REPORT_FORMAT})")
        log = _get(self.report, "proofs", "log")
        if not isinstance(log, dict):
            raise _fail("the report carries no signed checkpoint: nothing in it can be checked")
        vkey = _get(log, "key")
        if self.log_key is not None and self.log_key.strip() != vkey:
            raise _fail(f"the report's log key {vkey!r} is not the log key given ({self.log_key.strip()!r})")
        try:
            verifier = parse_vkey(vkey)
            cp = open_checkpoint(_get(log, "checkpoint"), verifier)
        except (NoteError, CheckpointError, ValueError) as error:
            raise _fail(f"the checkpoint does not verify: {error}") from error
        if cp.size != log.get("size") or cp.root_hash.hex() != log.get("root"):
            raise _fail("proofs.log size and root are not the signed checkpoint's")
        self.size, self.root = cp.size, cp.root_hash

    # -- 2. events ------------------------------------------------------------------------------

    def event(self, item: dict[str, Any], where: str) -> dict[str, Any]:
        seq = item.get("seq")
        label = f"{where}: event #{seq}"
        try:
            envelope = Envelope.from_json(item.get("envelope"))
        except EnvelopeError as error:
            raise _fail(f"{label}: malformed envelope ({error})") from error
        digest = envelope_hash(envelope)
        if digest != item.get("hash"):
            raise _fail(f"{label}: its hash is not the hash of its envelope (the event was altered)")
        body = envelope.body
        key = self.report["proofs"].get("keys", {}).get(body["key"])
        if not isinstance(key, dict):
            raise _fail(f"{label}: signed with key {body['key']}, which the report does not carry")
        try:
            public = decode_public_key(key.get("public_key"))
        except (ValueError, TypeError) as error:
            raise _fail(f"{label}: key {body['key']} is malformed") from error
        if key_id(public) != body["key"] or key.get("kid") != body["key"] or key.get("org") != body["actor"]:
            raise _fail(f"{label}: key {body['key']} is not a key of {body['actor']}")
        if not verify_signature(public, envelope):
            raise _fail(f"{label}: the signature does not verify (the event was altered)")
        proof = item.get("inclusion_proof")
        if proof is None:
            raise _fail(f"{label}: not covered by the report's checkpoint (size {self.size}); save the report "
                        "again after the next checkpoint")
        if item.get("log_index") != seq or not isinstance(seq, int) or proof.get("size") != self.size:
            raise _fail(f"{label}: its log index or proof size does not match the checkpoint")
        try:
            leaf = leaf_hash(encode_entry(seq, item.get("received"), envelope))
            verify_inclusion(leaf, seq, self.size, [bytes.fromhex(h) for h in proof.get("hashes") or []], self.root)
        except (ProofError, ValueError, TypeError) as error:
            raise _fail(f"{label}: its inclusion proof does not verify against the checkpoint ({error})") from error
        self.bodies[digest] = body
        return body

    def stream(self, items: Sequence[dict[str, Any]], stream: str, where: str) -> list[dict[str, Any]]:
        """Verify the events of one stream and that they link up; returns their bodies in log order."""
        if not isinstance(items, list) or not items:
            raise _fail(f"{where}: no events")
        seqs = [i.get("seq") for i in items]
        if seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
            raise _fail(f"{where}: events out of log order")
        bodies = [self.event(item, where) for item in items]
        previous: str | None = None
        for item, body in zip(items, bodies):
            joined = prev_hashes(body)
            if previous is None:
                first_ok = (stream in joined and joined[stream] is None) or (
                    body["type"] == "tags_issued" and stream.removeprefix("tag:") in issued_tags(body["data"]))
                if not first_ok:
                    raise _fail(f"{where}: the first event #{item['seq']} does not start the stream {stream}")
            elif joined.get(stream) != previous:
                raise _fail(f"{where}: event #{item['seq']} does not follow the event before it on {stream} "
                            "(an event is missing)")
            previous = item["hash"]
        return bodies

    # -- 4. facts -------------------------------------------------------------------------------

    def reading(self, listed: dict[str, dict[str, Any]]) -> None:
        """`decision.risk`'s Annex II rows and counts, and `summary`'s, from the checked incidents."""
        rows, outside = _annex_rows(listed)
        stated = _get(self.report, "decision", "risk")
        red = sum(1 for i in listed.values() if i["red_flag"])
        for key, value in (("annex_ii", rows), ("outside_annex_ii", outside), ("red_flags", red)):
            if stated.get(key) != value:
                raise _fail(f"decision.risk.{key} is not what the signed incidents give")
        if _get(self.report, "summary", "open_red_flags_in_window") != red:
            raise _fail("summary.open_red_flags_in_window is not what the signed incidents give")

    def completeness(self) -> None:
        """Every bag's chain verified (or the check stopped): a report not truncated says all are complete."""
        if self.report.get("truncated"):
            return
        bags = len(_get(self.report, "inputs"))
        expected = {"bags": bags, "complete": bags, "incomplete": [], "covered_by_checkpoint": bags}
        if _get(self.report, "decision", "chain_of_custody") != expected:
            raise _fail(f"decision.chain_of_custody is not what the signed chains give ({bags} of {bags} bags "
                        "complete and covered by the checkpoint)")
        summary = _get(self.report, "summary")
        if summary.get("input_bags") != bags or summary.get("tags_in_chain") != len(self.report["chain"]):
            raise _fail("summary.input_bags or summary.tags_in_chain is not what the signed chains give")
        if summary.get("integrity_problems") != 0 or _get(self.report, "decision", "authenticity",
                                                          "integrity_problems") != 0:
            raise _fail("integrity problems are stated, yet every signed event and link verifies")

    def custody(self) -> dict[str, int | None]:
        """Each tag's chain against its events; returns each tag's last own mass."""
        events = _get(self.report, "proofs", "events")
        chain = {c.get("tag"): c for c in _get(self.report, "chain")}
        if set(chain) != set(events):
            raise _fail("the custody chain and the proofs do not list the same tags")
        last_mass: dict[str, int | None] = {}
        for tag, items in events.items():
            bodies = self.stream(items, f"tag:{tag}", tag)
            steps = _get(chain[tag], "custody")
            if [s.get("seq") for s in steps] != [i["seq"] for i in items]:
                raise _fail(f"{tag}: the custody chain does not list the same events as the proofs")
            mass = None
            for step, item, body in zip(steps, items, bodies):
                data = body["data"]
                if body["stream"] == f"tag:{tag}":
                    if isinstance(data.get("mass_g"), int):
                        mass = data["mass_g"]
                elif body["type"] == "lot_split":
                    mass = next((o["mass_g"] for o in data.get("outputs") or [] if o.get("tag") == tag), mass)
                expected = {"hash": item["hash"], "type": body["type"], "stream": body["stream"],
                            "actor": body["actor"], "time": body["time"], "received": item["received"],
                            "mass_g": mass, "event_mass_g": data.get("mass_g"),
                            **{k: data.get(k) for k in CUSTODY_FIELDS}}
                for key, value in expected.items():
                    if step.get(key) != value:
                        raise _fail(f"{tag}: custody step #{step.get('seq')}: {key} is {step.get(key)!r}, the signed "
                                    f"event says {value!r}")
            last_mass[tag] = mass
        return last_mass

    def inputs_and_balance(self, last_mass: dict[str, int | None]) -> None:
        events = self.report["proofs"]["events"]
        attached: dict[str, dict[str, Any]] = {}
        for tag, items in events.items():
            for item in items:
                body = self.bodies[item["hash"]]
                if body["type"] == "tag_attached" and body["stream"] == f"tag:{tag}":
                    attached[tag] = {"time": body["time"], "site": body["actor"], **body["data"]}
        inputs = _get(self.report, "inputs")
        if sorted(i.get("tag") for i in inputs) != sorted(attached):
            raise _fail("the input bags are not the bags attached in the signed events")
        for item in inputs:
            signed = attached[item["tag"]]
            for key, value in (("site", signed["site"]), ("attached_at", signed["time"]),
                               ("mass_g", signed.get("mass_g")), ("mineral", signed.get("mineral")),
                               ("pit", signed.get("pit")), ("ore", signed.get("ore")), ("gps", signed.get("gps")),
                               ("price_paid", signed.get("price_paid"))):
                if item.get(key) != value:
                    raise _fail(f"input bag {item['tag']}: {key} is {item.get(key)!r}, the signed event says {value!r}")
        subject = _get(self.report, "tag")
        balance = _get(self.report, "mass_balance")
        total = sum(a.get("mass_g") or 0 for a in attached.values())
        final = last_mass.get(subject) or 0
        if _get(self.report, "subject", "mass_g") != last_mass.get(subject):
            raise _fail(f"the subject's mass {self.report['subject']['mass_g']!r} is not the signed events' "
                        f"{last_mass.get(subject)!r}")
        for key, value in (("attached_g", total), ("final_g", final), ("loss_g", total - final),
                           ("loss_ppm", _ppm(total - final, total))):
            if balance.get(key) != value:
                raise _fail(f"mass balance: {key} is {balance.get(key)!r}, the signed events give {value!r}")
        for step in balance.get("steps") or []:
            item = next((i for i in events.get(step.get("tag"), []) if i["seq"] == step.get("seq")), None)
            if item is None:
                raise _fail(f"mass balance: step #{step.get('seq')} is not a signed event of the report")
            data = self.bodies[item["hash"]]["data"]
            after = data["mass_g"] if step.get("type") == "lot_formed" else sum(o["mass_g"] for o in data["outputs"])
            if step.get("after_g") != after or step.get("difference_g") != after - (step.get("before_g") or 0):
                raise _fail(f"mass balance: step #{step['seq']} does not match its signed event")

    def incidents(self) -> int:
        risk = self.report.get("risk")
        if risk is None:
            return 0
        at = parse_time(_get(risk, "at"))
        signed = _get(self.report, "proofs", "risk_events")
        listed: dict[str, dict[str, Any]] = {}
        for site in _get(risk, "sites"):
            for incident in site.get("incidents") or []:
                listed.setdefault(incident.get("id"), incident)
        if set(listed) != set(signed):
            raise _fail("the incidents listed and their signed events do not match")
        for ident, incident in listed.items():
            items = signed[ident]
            bodies = self.stream(items, f"incident:{ident}", ident)
            expected = _fold_incident(ident, items, bodies, at)
            for key, value in expected.items():
                if key == "actions":
                    shown = incident.get("actions") or []
                    if len(shown) != len(value):
                        raise _fail(f"{ident}: {len(shown)} corrective actions listed, the signed events give "
                                    f"{len(value)}")
                    for a, b in zip(shown, value):
                        for k, v in b.items():
                            if a.get(k) != v:
                                raise _fail(f"{ident}: action {b['action']}: {k} is {a.get(k)!r}, the signed events "
                                            f"give {v!r}")
                elif incident.get(key) != value:
                    raise _fail(f"{ident}: {key} is {incident.get(key)!r}, the signed events give {value!r}")
        step3 = recommend(listed.values()).to_json()
        stated = _get(self.report, "decision", "risk", "step3")
        if stated != step3:
            raise _fail(f"the OECD Step 3 recommendation {stated.get('recommendation')!r} is not the one the signed "
                        f"facts give ({step3['recommendation']!r})")
        self.reading(listed)
        unremediated = sum(1 for i in listed.values() if i["red_flag"] and i["status"] in ("reported", "confirmed"))
        if risk.get("unremediated") != unremediated:
            raise _fail(f"risk: {risk.get('unremediated')!r} unremediated red flags stated, the signed facts give "
                        f"{unremediated}")
        return len(listed)


def _annex_rows(listed: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    rows: dict[str, dict[str, Any]] = {}
    outside = []
    for ident, incident in listed.items():
        if not incident["annex_ii"]:
            outside.append(ident)
        for item in incident["annex_ii"]:
            row = rows.setdefault(item["risk"], {"risk": item["risk"], "paragraphs": item["paragraphs"],
                                                 "incidents": [], "unresolved": []})
            row["incidents"].append(ident)
            if incident["status"] in ("reported", "confirmed"):
                row["unresolved"].append(ident)
    return sorted(rows.values(), key=lambda r: r["paragraphs"]), sorted(outside)


def _fold_incident(ident: str, items: Sequence[dict[str, Any]], bodies: Sequence[dict[str, Any]],
                   at: datetime) -> dict[str, Any]:
    """An incident's public facts from its signed events (protocol 16.3 and 16.5)."""
    first = bodies[0]
    if first["type"] != "incident_reported":
        raise _fail(f"{ident}: its first event is not incident_reported")
    data = first["data"]
    facts: dict[str, Any] = {
        "id": ident, "site": data.get("site"), "reporter": first["actor"], "category": data.get("category"),
        "worst_forms": data.get("worst_forms"), "severity": data.get("severity"), "status": "reported",
        "occurred_at": data.get("occurred_at"), "reported_at": first["time"], "resolved_at": None,
        "summary": data.get("summary"), "people_affected": data.get("people_affected"),
        "referred_to": data.get("referred_to"), "details_sha256": (data.get("details") or {}).get("sha256"),
    }
    evidence = list(data.get("evidence") or [])
    actions: dict[str, dict[str, Any]] = {}
    for body in bodies[1:]:
        kind, d = body["type"], body["data"]
        if kind == "incident_confirmed":
            facts["status"] = "confirmed"
            if d.get("severity") is not None:
                facts["severity"] = d["severity"]
            evidence.extend(d.get("evidence") or [])
        elif kind in ("incident_dismissed", "incident_closed"):
            facts["status"] = "dismissed" if kind == "incident_dismissed" else "closed"
            facts["resolved_at"] = body["time"]
            for action in actions.values():
                if action["status"] == "open":
                    action["status"] = "cancelled"
        elif kind == "action_assigned":
            actions[d["action"]] = {"action": d["action"], "owner": d["owner"], "description": d["description"],
                                    "cycle": d["cycle"], "due": _cycle_due(d["cycle"]), "status": "open",
                                    "progress": None, "reports": 0, "last_verification": None,
                                    "implemented_at": None}
        elif kind == "action_progress" and d.get("action") in actions:
            actions[d["action"]]["reports"] += 1
            if d.get("percent") is not None:
                actions[d["action"]]["progress"] = d["percent"]
        elif kind == "action_verified" and d.get("action") in actions:
            actions[d["action"]]["last_verification"] = d["outcome"]
            if d["outcome"] == "implemented":
                actions[d["action"]]["status"] = "implemented"
                actions[d["action"]]["implemented_at"] = body["time"]
    for action in actions.values():
        action["overdue"] = action["status"] == "open" and parse_time(action["due"]) <= at
    risks = ("serious_abuses",) if facts["category"] == "child_labour" and facts["worst_forms"] else \
        ANNEX_II_OF_CATEGORY.get(facts["category"], ())
    facts["annex_ii"] = [{"risk": r, "paragraphs": ANNEX_II_PARAGRAPHS[r]} for r in risks]
    facts["red_flag"] = facts["severity"] in ("high", "critical") or bool(
        {"serious_abuses", "non_state_armed_groups"} & set(risks))
    facts["remediated"] = facts["status"] == "closed" and all(a["status"] == "implemented" for a in actions.values())
    facts["evidence"] = evidence
    facts["actions"] = list(actions.values())
    facts["events"] = [{"seq": i["seq"], "hash": i["hash"], "type": b["type"], "actor": b["actor"], "time": b["time"]}
                       for i, b in zip(items, bodies)]
    return facts


def verify_report(report: Any, log_key: str | None = None) -> Verified:
    """Check a parsed saved report (module docstring); raises :class:`ReportError` at the first problem."""
    checker = _Checker(report, log_key)
    checker.checkpoint()
    last_mass = checker.custody()
    checker.inputs_and_balance(last_mass)
    checker.completeness()
    incidents = checker.incidents()
    return Verified(tag=report["tag"], checkpoint_size=checker.size, events=len(checker.bodies),
                    incidents=incidents,
                    recommendation=report["decision"]["risk"]["step3"]["recommendation"])


def main(argv: Sequence[str] | None = None) -> int:
    """``verify-report FILE [--log-key VKEY]``: 0 and one line if the report verifies, else 1 and one line."""
    import argparse

    parser = argparse.ArgumentParser(prog="verify-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="the saved JSON report")
    parser.add_argument("--log-key", help="the log's verifier key (note format, GET /v1/log/key) to pin")
    args = parser.parse_args(argv)
    try:
        with open(args.file, encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, ValueError) as error:
        print(f"verify-report: cannot read {args.file}: {error}", file=sys.stderr)
        return 1
    try:
        verified = verify_report(report, args.log_key)
    except ReportError as error:
        print(f"verify-report: FAILED: {error}", file=sys.stderr)
        return 1
    except (KeyError, TypeError, ValueError, AttributeError) as error:  # a report whose shape was changed
        print(f"verify-report: FAILED: the report is malformed ({type(error).__name__}: {error})", file=sys.stderr)
        return 1
    print(f"verify-report: OK: {verified.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
