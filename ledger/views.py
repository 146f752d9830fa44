"""Documents the ledger shows to the world: the verified view of a tag (format `tagledger/tag-view/v1`).

The view carries everything a client needs to check the server instead of trusting it: every envelope of the
tag's stream with its log position and receipt time (from which the exact log entry bytes are rebuilt, see
docs/protocol.md section 5), and every signer's public key with its validity.
"""

from __future__ import annotations

from typing import Any

from domain.custody import Status
from domain.flags import verdict_summary
from domain.registry import Registry
from ledger.service import TagView

VIEW_FORMAT = "tagledger/tag-view/v1"


def kilograms(grams: int | None) -> str | None:
    """Exact decimal kilograms for display: 49800 -> "49.800"."""
    if grams is None:
        return None
    return f"{grams // 1000}.{grams % 1000:03d}"


def _org_name(registry: Registry, org_id: str | None) -> str | None:
    org = registry.orgs.get(org_id) if org_id else None
    return org.name if org else None


def verdict(view: TagView, registry: Registry) -> dict[str, Any]:
    """The answer at the top: is this tag authentic, and where is it in its life? A tag whose history verifies
    but that has fraud flags (its own or inherited) is `flagged`, with its `custody_status` and the reasons."""
    state = view.state
    if view.problems:
        return {
            "code": "integrity_failed",
            "authentic": False,
            "summary": "The history of this tag does not verify: " + "; ".join(view.problems),
        }
    holder = _org_name(registry, state.holder) or state.holder
    summaries = {
        Status.ISSUED: f"Authentic tag issued to {_org_name(registry, state.issued_to)}, not yet on a bag.",
        Status.IN_CUSTODY: f"Authentic. In the custody of {holder}.",
        Status.IN_TRANSIT: (
            f"Authentic. In transit from {holder} to "
            f"{_org_name(registry, state.pending_recipient) or state.pending_recipient}."
        ),
        Status.MERGED: f"Authentic. Merged into lot {state.lot}.",
        Status.SPLIT: f"Authentic. Split into {len(state.outputs)} tags.",
        Status.CONSUMED: f"Authentic. Consumed at the smelter/refiner {holder}.",
        Status.VOIDED: f"Voided ({state.void_reason}): material bearing this tag must not be accepted.",
    }
    result = {
        "code": str(state.status),
        "authentic": state.status != Status.VOIDED,
        "summary": summaries[state.status],
    }
    if view.flags:
        custody = result["summary"].removeprefix("Authentic. ").replace("Authentic tag issued", "Tag issued")
        result = {"code": "flagged", "authentic": False, "custody_status": str(state.status),
                  "summary": verdict_summary(view.flags, custody)}
    if state.status == Status.CONSUMED:
        refiner = registry.orgs.get(state.holder or "")
        result["refiner"] = {"org": state.holder, "name": holder, "rmi_cid": refiner.rmi_cid if refiner else None}
    return result


def tag_document(view: TagView, registry: Registry) -> dict[str, Any]:
    state = view.state
    signers: dict[str, Any] = {}
    events = []
    checkpoint = view.checkpoint
    for entry in view.entries:
        body = entry.body
        key = registry.keys.get(body["key"])
        if key is not None and key.kid not in signers:
            signers[key.kid] = {**key.to_json(), "org_name": _org_name(registry, key.org)}
        events.append(
            {
                "seq": entry.seq,
                "received": entry.received,
                "hash": entry.hash,
                "type": body["type"],
                "actor": body["actor"],
                "actor_name": _org_name(registry, body["actor"]),
                "time": body["time"],
                "envelope": entry.envelope,
                "log_index": entry.seq,
                "inclusion_proof": None if entry.seq not in view.proofs else {
                    "size": checkpoint.size,  # type: ignore[union-attr]
                    "hashes": [h.hex() for h in view.proofs[entry.seq]],
                },
            }
        )
    for judged in view.refused_attempts:  # their signatures can be checked too
        key = registry.keys.get(judged.attempt.body["key"])
        if key is not None and key.kid not in signers:
            signers[key.kid] = {**key.to_json(), "org_name": _org_name(registry, key.org)}
    origins = [{**o, "site_name": _org_name(registry, o["site"])} for o in view.origins]
    return {
        "format": VIEW_FORMAT,
        "tag": view.tag,
        "verdict": verdict(view, registry),
        "state": {
            **state.to_json(),
            "mass_kg": kilograms(state.mass_g),
            "holder_name": _org_name(registry, state.holder),
            "issued_to_name": _org_name(registry, state.issued_to),
        },
        "origins": origins,
        "events": events,
        "keys": signers,
        "problems": list(view.problems),
        "flags": list(view.flags),
        "flags_position": view.flags_position,
        "refused_attempts": [j.to_json() for j in view.refused_attempts],
        "risk": view.risk,
        "as_of": view.as_of,
        "log": None if checkpoint is None else {
            "checkpoint": checkpoint.note,
            "size": checkpoint.size,
            "root": checkpoint.root.hex(),
        },
        "verify": (
            "Each event's envelope hash is sha256(jcs(envelope)); its signature is Ed25519 over jcs(body) by the "
            "listed key; its log entry is jcs({v:1, seq, received, envelope}), leaf log_index of the log's Merkle "
            "tree: its inclusion_proof leads to the root of log.checkpoint, a note signed by the log key "
            "(GET /v1/log/key). An event with no proof yet arrived after that checkpoint. See docs/protocol.md."
        ),
    }
