"""The due-diligence report for a lot, a shipment or a bag (protocol 16.7, `tagledger/dd-report/v1`).

What a buyer asks before accepting material under the OECD Guidance: where every bag in it was mined, who held
it and where, whether the masses add up, what risks were open at those sites and how they were remediated, what
the fraud flags say, and the proofs to check all of it without trusting the ledger: every event's envelope, its
signer's key, its log index and inclusion proof against the signed checkpoint.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from verification.oecd_step3 import recommend
from ledger.entries import read_entry
from ledger.service import Ledger, TagView
from ledger.views import kilograms, tag_document

REPORT_FORMAT = "tagledger/dd-report/v1"
MAX_CHAIN = 2000
"""Tags described one by one (the subject and those upstream); a bigger lot is reported truncated, and says so."""

_CUSTODY_FIELDS = ("to", "mass_g", "location", "gps", "inputs", "outputs", "reason", "product", "purpose")


def _step(event: dict[str, Any], tag: str, mass_g: int | None) -> dict[str, Any]:
    """One event of `tag`'s custody chain, as a reader of the report needs it (the envelope is kept alongside).

    `mass_g` is the tag's own mass after the event (`mass_kg` the same in kg): for a merge recorded on the lot's
    stream, the bag's mass going into it, not the lot's (which is `event_mass_g`, the mass the event states)."""
    data = event["envelope"]["body"]["data"]
    step = {
        "seq": event["seq"],
        "hash": event["hash"],
        "type": event["type"],
        "stream": event["envelope"]["body"]["stream"],
        "actor": event["actor"],
        "actor_name": event["actor_name"],
        "time": event["time"],
        "received": event["received"],
    }
    step.update({k: data.get(k) for k in _CUSTODY_FIELDS})
    step["event_mass_g"] = data.get("mass_g")
    step["mass_g"] = mass_g
    step["mass_kg"] = kilograms(mass_g)
    return step


def _custody(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps of one tag's chain, each with the tag's own mass after it."""
    tag, mass, steps = doc["tag"], None, []
    for event in doc["events"]:
        body = event["envelope"]["body"]
        data = body["data"]
        if body["stream"] == f"tag:{tag}":
            if isinstance(data.get("mass_g"), int):
                mass = data["mass_g"]
        elif event["type"] == "lot_split":
            mass = next((o["mass_g"] for o in data.get("outputs") or [] if o.get("tag") == tag), mass)
        steps.append(_step(event, tag, mass))
    return steps


def _ppm(part: int, whole: int) -> int | None:
    return None if whole == 0 else round(Fraction(part * 1_000_000, whole))


def _mass_balance(subject: TagView, docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Attached mass of every bag, each merge and split with its difference, and the mass at the end."""
    attached = sum(o["mass_g"] for o in _attachments(docs))
    steps = []
    for doc in docs.values():
        for event in doc["events"]:
            if event["envelope"]["body"]["stream"] != f"tag:{doc['tag']}":
                continue  # a merge or split is listed once, on the lot's own stream
            data = event["envelope"]["body"]["data"]
            if event["type"] == "lot_formed":
                before = sum((docs[t]["state"]["mass_g"] or 0) for t in data["inputs"] if t in docs)
                after = data["mass_g"]
            elif event["type"] == "lot_split":
                before = doc["state"]["mass_g"] or 0
                after = sum(o["mass_g"] for o in data["outputs"])
            else:
                continue
            steps.append({"seq": event["seq"], "type": event["type"], "tag": doc["tag"], "before_g": before,
                          "after_g": after, "difference_g": after - before, "difference_ppm": _ppm(after - before, before)})
    final = subject.state.mass_g or 0
    steps.sort(key=lambda s: s["seq"])
    return {
        "attached_g": attached,
        "attached_kg": kilograms(attached),
        "final_g": final,
        "final_kg": kilograms(final),
        "loss_g": attached - final,
        "loss_ppm": _ppm(attached - final, attached),
        "steps": steps,
        "note": "A lot's inputs may have been split off elsewhere: the balance compares the bags that reached this "
                "tag with its final mass; a gain is a fraud flag (mass.gain, lot.heavier_than_inputs).",
    }


def _attachments(docs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for doc in docs.values():
        origin = doc["state"]["origin"]
        if origin is None:
            continue
        attach = next(e for e in doc["events"] if e["type"] == "tag_attached")
        found.append({"tag": doc["tag"], **origin, "mass_g": attach["envelope"]["body"]["data"]["mass_g"]})
    return sorted(found, key=lambda o: o["tag"])


def _authenticity(subject_doc: dict[str, Any], docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Is the tag genuine and its signed history intact? Says nothing about risk (that is `risk_reading`)."""
    verdict = subject_doc["verdict"]
    problems = sum(len(d["problems"]) for d in docs.values())
    if problems:
        code = "integrity_failed"
    elif subject_doc["state"]["status"] == "voided":
        code = "voided"
    elif subject_doc["flags"]:
        code = "flagged"
    else:
        code = "authentic"
    return {"code": code, "authentic": code == "authentic", "integrity_problems": problems,
            "flags": sorted({f["code"] for f in subject_doc["flags"]}), "custody_status": subject_doc["state"]["status"],
            "summary": verdict["summary"]}


def _completeness(subject_doc: dict[str, Any], docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Input bags whose signed chain is complete: in the report, attached at a site, and verifying (no integrity
    problem); `covered_by_checkpoint`: those whose every event also has an inclusion proof in the checkpoint."""
    bags = [o["tag"] for o in subject_doc["origins"]]
    complete = [t for t in bags if t in docs and not docs[t]["problems"]
                and any(e["type"] == "tag_attached" for e in docs[t]["events"])]
    covered = [t for t in complete if all(e["inclusion_proof"] is not None for e in docs[t]["events"])]
    return {"bags": len(bags), "complete": len(complete), "incomplete": sorted(set(bags) - set(complete)),
            "covered_by_checkpoint": len(covered)}


def _risk_reading(risk: dict[str, Any] | None) -> dict[str, Any]:
    """The incidents open while the ore was at their sites, by OECD Annex II risk, and Step 3's answer."""
    incidents: dict[str, dict[str, Any]] = {}
    for site in (risk or {}).get("sites") or []:
        for incident in site.get("incidents") or []:
            incidents.setdefault(incident["id"], incident)
    by_risk: dict[str, dict[str, Any]] = {}
    outside = []
    for incident in incidents.values():
        if not incident["annex_ii"]:
            outside.append(incident["id"])
        for item in incident["annex_ii"]:
            row = by_risk.setdefault(item["risk"], {"risk": item["risk"], "paragraphs": item["paragraphs"],
                                                    "incidents": [], "unresolved": []})
            row["incidents"].append(incident["id"])
            if incident["status"] in ("reported", "confirmed"):
                row["unresolved"].append(incident["id"])
    return {
        "annex_ii": sorted(by_risk.values(), key=lambda r: r["paragraphs"]),
        "outside_annex_ii": sorted(outside),
        "red_flags": sum(1 for i in incidents.values() if i["red_flag"]),
        "unremediated_red_flags": (risk or {}).get("unremediated", 0),
        "step3": recommend(incidents.values()).to_json(),
    }


def _orgs(registry: Any, docs: dict[str, dict[str, Any]], risk: dict[str, Any] | None) -> dict[str, Any]:
    """Every organisation the report names (actors, recipients, sites, monitors, action owners, partners): its
    name, role, country and, for a refiner, its RMI smelter ID, as registered."""
    ids: set[str] = set()
    for doc in docs.values():
        ids.update(filter(None, (doc["state"].get("holder"), doc["state"].get("issued_to"))))
        for event in doc["events"]:
            ids.add(event["actor"])
            to = event["envelope"]["body"]["data"].get("to")
            if isinstance(to, str):
                ids.add(to)
    for site in (risk or {}).get("sites") or []:
        ids.add(site["site"])
        for incident in site.get("incidents") or []:
            ids.update(filter(None, (incident.get("reporter"), incident.get("referred_to"))))
            ids.update(a["owner"] for a in incident.get("actions") or [])
            ids.update(e["actor"] for e in incident.get("events") or [])
    found = {}
    for org in sorted(ids):
        record = registry.orgs.get(org)
        if record is not None:
            found[org] = {"name": record.name, "role": getattr(record, "role", None),
                          "country": getattr(record, "country", None), "rmi_cid": getattr(record, "rmi_cid", None)}
    return found


def _risk_events(ledger: Ledger, subject: TagView, as_of: int | None) -> dict[str, list[dict[str, Any]]]:
    """Every signed event of each incident the report lists, with its inclusion proof against the report's
    checkpoint: what `verify-report` folds the incidents' facts from (protocol 16.8)."""
    checkpoint = subject.checkpoint
    found: dict[str, list[dict[str, Any]]] = {}
    for site in (subject.risk or {}).get("sites") or []:
        for incident in site.get("incidents") or []:
            if incident["id"] in found:
                continue
            stored = ledger.store.read_tagged([f"incident:{incident['id']}"])
            entries = [read_entry(s.data) for s in stored if as_of is None or s.seq < as_of]
            covered = [e.seq for e in entries if checkpoint is not None and e.seq < checkpoint.size]
            proofs = dict(zip(covered, ledger.store.tree.inclusion_proofs(covered, checkpoint.size))) \
                if covered else {}  # type: ignore[attr-defined, union-attr]
            found[incident["id"]] = [
                {"seq": e.seq, "received": e.received, "hash": e.hash, "log_index": e.seq,
                 "inclusion_proof": None if e.seq not in proofs else {
                     "size": checkpoint.size, "hashes": [h.hex() for h in proofs[e.seq]]},  # type: ignore[union-attr]
                 "envelope": e.envelope}
                for e in entries
            ]
    return found


def due_diligence_report(ledger: Ledger, tag_id: str, *, as_of: int | None = None) -> dict[str, Any] | None:
    """The report for `tag_id`, or None if it was never issued (before log size `as_of`, if given)."""
    subject = ledger.tag(tag_id, as_of=as_of)
    if subject is None:
        return None
    registry = ledger.registry()
    chain = [tag_id, *subject.upstream]
    truncated = len(chain) > MAX_CHAIN
    docs: dict[str, dict[str, Any]] = {tag_id: tag_document(subject, registry)}
    for tag in chain[1:MAX_CHAIN]:
        view = ledger.tag(tag, as_of=as_of, context=False)  # flags and risk are the subject's, inherited
        if view is not None:
            docs[tag] = tag_document(view, registry)
    subject_doc = docs[tag_id]
    names = {o["site"]: o["site_name"] for o in subject_doc["origins"]}
    keys: dict[str, Any] = {}
    for doc in docs.values():
        keys.update(doc["keys"])
    risk_events = _risk_events(ledger, subject, as_of)
    for events in risk_events.values():  # the keys of the monitors, the operator and the action owners too
        for event in events:
            record = registry.keys.get(event["envelope"]["body"]["key"])
            if record is not None and record.kid not in keys:
                org = registry.orgs.get(record.org)
                keys[record.kid] = {**record.to_json(), "org_name": org.name if org else None}
    return {
        "format": REPORT_FORMAT,
        "orgs": _orgs(registry, docs, subject.risk),
        "tag": tag_id,
        "as_of": as_of,
        "at": subject.risk["at"] if subject.risk else None,
        "subject": {
            "tag": tag_id,
            "verdict": subject_doc["verdict"],
            "status": subject_doc["state"]["status"],
            "holder": subject_doc["state"]["holder"],
            "holder_name": subject_doc["state"]["holder_name"],
            "mass_g": subject_doc["state"]["mass_g"],
            "mass_kg": subject_doc["state"]["mass_kg"],
            "minerals": sorted({o["mineral"] for o in subject_doc["origins"]}),
        },
        "decision": {
            "authenticity": _authenticity(subject_doc, docs),
            "chain_of_custody": _completeness(subject_doc, docs),
            "risk": _risk_reading(subject.risk),
        },
        "summary": {
            "input_bags": len(subject_doc["origins"]),
            "sites": len(names),
            "tags_in_chain": len(chain),
            "flags": len(subject_doc["flags"]),
            "open_red_flags_in_window": subject.risk["open_red_flags_in_window"] if subject.risk else 0,
            "unremediated_red_flags": subject.risk["unremediated"] if subject.risk else 0,
            "integrity_problems": sum(len(d["problems"]) for d in docs.values()),
        },
        "inputs": _attachments(docs),
        "chain": [
            {
                "tag": doc["tag"],
                "status": doc["state"]["status"],
                "lot": doc["state"]["lot"],
                "parent": doc["state"]["parent"],
                "custody": _custody(doc),
                "problems": doc["problems"],
            }
            for doc in docs.values()
        ],
        "truncated": truncated,
        "mass_balance": _mass_balance(subject, docs),
        "risk": subject.risk,
        "flags": subject_doc["flags"],
        "proofs": {
            "log": None if subject_doc["log"] is None else {**subject_doc["log"], "key": ledger.identity().vkey},
            "risk_events": risk_events,
            "keys": keys,
            "events": {
                doc["tag"]: [
                    {"seq": e["seq"], "received": e["received"], "hash": e["hash"], "log_index": e["log_index"],
                     "inclusion_proof": e["inclusion_proof"], "envelope": e["envelope"]}
                    for e in doc["events"]
                ]
                for doc in docs.values()
            },
        },
        "verify": subject_doc["verify"],
    }
