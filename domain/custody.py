"""The custody state of one security tag, folded from the events of its stream.

A tag is issued to an organisation, attached to a bag at the pit, handed over (dispatched, then received),
merged into a lot or split out of one, and finally consumed at a refiner or voided. `apply` folds one
accepted event into the states of every tag stream it touches; it trusts that the event was admitted by
`domain.rules` and never raises on a valid log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from domain.registry import StreamHead
from verification.encoding import parse_time
from verification.envelope import issued_among, issued_tags


class Status(StrEnum):
    ISSUED = "issued"  # issued to an organisation, not yet on a bag
    IN_CUSTODY = "in_custody"  # on a bag or lot, held by `holder`
    IN_TRANSIT = "in_transit"  # dispatched by `holder` to `pending_recipient`
    MERGED = "merged"  # went into lot `lot`
    SPLIT = "split"  # a lot that was split into `outputs`
    CONSUMED = "consumed"  # consumed at the refiner `holder`
    VOIDED = "voided"  # lost, stolen or damaged


FINISHED = frozenset({Status.MERGED, Status.SPLIT, Status.CONSUMED, Status.VOIDED})


@dataclass
class TagState:
    tag: str
    issued_to: str
    head: StreamHead
    status: Status = Status.ISSUED
    holder: str | None = None
    pending_recipient: str | None = None
    dispatched_mass_g: int | None = None
    mass_g: int | None = None
    origin: dict[str, Any] | None = None
    lot: str | None = None
    inputs: list[str] = field(default_factory=list)
    parent: str | None = None
    outputs: list[str] = field(default_factory=list)
    void_reason: str | None = None
    events: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_json(self) -> dict[str, Any]:
        """A plain, deterministic representation (used by projections and the API)."""
        return {
            "tag": self.tag,
            "status": str(self.status),
            "issued_to": self.issued_to,
            "holder": self.holder,
            "pending_recipient": self.pending_recipient,
            "dispatched_mass_g": self.dispatched_mass_g,
            "mass_g": self.mass_g,
            "origin": self.origin,
            "lot": self.lot,
            "inputs": list(self.inputs),
            "parent": self.parent,
            "outputs": list(self.outputs),
            "void_reason": self.void_reason,
            "events": self.events,
            "head": {"hash": self.head.hash, "seq": self.head.seq},
            "last_time": format_state_time(self.head.time),
        }


def format_state_time(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffffZ` with a 4-digit year (`strftime("%Y")` does not pad years before 1000)."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def tag_of(stream: str) -> str:
    return stream.removeprefix("tag:")


def apply(
    tags: dict[str, TagState],
    body: dict[str, Any],
    envelope_hash: str,
    seq: int,
    only: set[str] | None = None,
) -> None:
    """Fold one accepted event into `tags` (a map tag id -> state), in place.

    `tags` may be a partial view: states of tags it does not hold are simply not updated, so the history of
    one tag can be folded on its own. A `tags_issued` event creates a state for every tag it issues, or only
    for those in `only` when given.
    """
    event_type = body["type"]
    data = body["data"]
    head = StreamHead(envelope_hash, seq, parse_time(body["time"]))
    actor = body["actor"]

    if event_type == "tags_issued":
        recipient = body["stream"].removeprefix("org:")
        for tag in issued_tags(data) if only is None else issued_among(data, only):
            tags[tag] = TagState(tag=tag, issued_to=recipient, head=head, events=1)
        return
    if not body["stream"].startswith("tag:"):
        return

    for stream in (body["stream"], *(body.get("links") or {})):
        state = tags.get(tag_of(stream))
        if state is not None:
            state.head = head
            state.events += 1

    primary = tags.get(tag_of(body["stream"]))
    if event_type == "lot_formed":
        for tag in data["inputs"]:
            if tags.get(tag) is not None:
                tags[tag].status = Status.MERGED
                tags[tag].lot = tag_of(body["stream"])
    elif event_type == "lot_split":
        for output in data["outputs"]:
            child = tags.get(output["tag"])
            if child is not None:
                child.status = Status.IN_CUSTODY
                child.holder = actor
                child.mass_g = output["mass_g"]
                child.parent = tag_of(body["stream"])
    if primary is None:
        return

    if event_type == "tag_attached":
        primary.status = Status.IN_CUSTODY
        primary.holder = actor
        primary.mass_g = data["mass_g"]
        primary.origin = {
            "site": data["site"],
            "mineral": data["mineral"],
            "ore": data.get("ore"),
            "pit": data["pit"],
            "gps": data.get("gps"),
            "attached_at": body["time"],
            "price_paid": data.get("price_paid"),
        }
    elif event_type == "custody_dispatched":
        primary.status = Status.IN_TRANSIT
        primary.pending_recipient = data["to"]
        primary.dispatched_mass_g = data.get("mass_g")
    elif event_type == "custody_received":
        primary.status = Status.IN_CUSTODY
        primary.holder = actor
        primary.pending_recipient = None
        primary.dispatched_mass_g = None
        primary.mass_g = data["mass_g"]
    elif event_type == "lot_formed":
        primary.status = Status.IN_CUSTODY
        primary.holder = actor
        primary.mass_g = data["mass_g"]
        primary.inputs = list(data["inputs"])
    elif event_type == "lot_split":
        primary.status = Status.SPLIT
        primary.outputs = [output["tag"] for output in data["outputs"]]
    elif event_type == "tag_consumed":
        primary.status = Status.CONSUMED
        if data.get("mass_g") is not None:
            primary.mass_g = data["mass_g"]
    elif event_type == "tag_voided":
        primary.status = Status.VOIDED
        primary.void_reason = data["reason"]
        primary.pending_recipient = None
