"""The custody rules of docs/protocol.md section 7 ("Custody (tags)"), checked on the tags' states.

:func:`check_tag_event` is called by the replay for a tag event after the generic checks (structure,
signer, signature, key validity, role, streams, time): every tag stream the event joins exists. It raises
:class:`~verification.replay_errors.RuleBroken` naming the first rule broken, with the ledger's field:

- ``tag.already_attached``, ``tag.not_issued_to_actor`` -- attaching (or using as a new lot / split
  output) a tag that is not fresh, or that was issued to someone else;
- ``tag.not_attached``, ``tag.finished`` -- a custody event on a tag still ``issued``, or on a tag that is
  ``merged``, ``split``, ``consumed`` or ``voided``;
- ``custody.not_holder``, ``custody.in_transit``, ``custody.not_in_transit``, ``custody.not_recipient``;
- ``recipient.invalid`` -- a dispatch to an unknown organisation, a non-custody role, or oneself;
- ``mass.gain`` -- ``mass_g * 1_000_000 > reference * (1_000_000 + tolerance)``; the reference is the
  tag's mass, or for a receipt after a dispatch that stated a mass, that mass; no reference, no check;
- ``mass.balance`` -- ``|a - b| * 1_000_000 > b * tolerance`` for a lot against the sum of its inputs, and
  for the outputs of a split against the lot (``b`` is the inputs' or the lot's mass; a tag with no mass
  counts 0);
- ``envelope.malformed`` -- inputs or outputs repeated, naming the lot itself, or not exactly the
  ``links`` of the event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from verification.custody_state import FINISHED, ISSUED, IN_TRANSIT, TagState
from verification.entry_checks import CheckedEntry
from verification.event_data import CUSTODY_ROLES
from verification.replay_errors import RuleBroken

__all__ = ["check_tag_event"]

PPM = 1_000_000


def _live(state: TagState, field: str) -> TagState:
    if state.status == ISSUED:
        raise RuleBroken("tag.not_attached", field, f"{state.tag} is not on a bag yet")
    if state.status in FINISHED:
        raise RuleBroken("tag.finished", field, f"{state.tag} is {state.status}: nothing can follow")
    return state


def _holder(state: TagState, actor: str, field: str) -> None:
    if state.holder != actor:
        raise RuleBroken("custody.not_holder", field, f"{state.tag} is held by {state.holder}")


def _not_in_transit(state: TagState, field: str) -> None:
    if state.status == IN_TRANSIT:
        raise RuleBroken("custody.in_transit", field, f"{state.tag} is in transit to {state.pending_recipient}")


def _fresh_of(state: TagState, actor: str, field: str) -> None:
    if state.issued_to != actor:
        raise RuleBroken("tag.not_issued_to_actor", field, f"{state.tag} was issued to {state.issued_to}")
    if state.status != ISSUED:
        raise RuleBroken("tag.already_attached", field, f"{state.tag} is already in use ({state.status})")


def _no_gain(mass: int, reference: int | None, tolerance: int, field: str) -> None:
    if reference is not None and mass * PPM > reference * (PPM + tolerance):
        raise RuleBroken("mass.gain", field, f"{mass} g is more than {reference} g plus {tolerance} ppm")


def _balance(mass: int, reference: int, tolerance: int, field: str, what: str) -> None:
    if abs(mass - reference) * PPM > reference * tolerance:
        raise RuleBroken("mass.balance", field, f"{mass} g differs from {what} ({reference} g) by more than "
                         f"{tolerance} ppm")


def _exactly_linked(entry: CheckedEntry, tags: list[str], field: str, what: str) -> None:
    if len(set(tags)) != len(tags) or entry.stream[4:] in tags:
        raise RuleBroken("envelope.malformed", field, f"{what} are distinct and exclude the lot")
    if {name for name, _ in entry.links} != {"tag:" + t for t in tags}:
        raise RuleBroken("envelope.malformed", "/body/links", f"links must name exactly the {what}' streams")


def check_tag_event(
    entry: CheckedEntry,
    tags: Mapping[str, TagState],
    role_of: Callable[[str], str | None],
    tolerance: int,
) -> None:
    """Raise :class:`RuleBroken` if the tag event ``entry`` breaks a custody rule (module docstring)."""
    kind = entry.type
    data = entry.data
    actor = entry.actor
    state = tags[entry.stream[4:]]

    if kind == "tag_attached":
        if state.status != ISSUED:
            raise RuleBroken("tag.already_attached", "/body/stream", f"{state.tag} is {state.status}")
        if actor != state.issued_to:
            raise RuleBroken("tag.not_issued_to_actor", "/body/actor", f"{state.tag} was issued to {state.issued_to}")
        if data["site"] != state.issued_to:
            raise RuleBroken("tag.not_issued_to_actor", "/body/data/site",
                             f"{state.tag} belongs to site {state.issued_to}")
    elif kind == "custody_dispatched":
        _live(state, "/body/stream")
        _holder(state, actor, "/body/actor")
        _not_in_transit(state, "/body/stream")
        to = data["to"]
        if role_of(to) not in CUSTODY_ROLES or to == actor:
            raise RuleBroken("recipient.invalid", "/body/data/to",
                             "the recipient must be another organisation that can hold custody")
        if data.get("mass_g") is not None:
            _no_gain(data["mass_g"], state.mass_g, tolerance, "/body/data/mass_g")
    elif kind == "custody_received":
        _live(state, "/body/stream")
        if state.status != IN_TRANSIT:
            raise RuleBroken("custody.not_in_transit", "/body/stream", f"{state.tag} was not dispatched")
        if actor != state.pending_recipient:
            raise RuleBroken("custody.not_recipient", "/body/actor",
                             f"{state.tag} was dispatched to {state.pending_recipient}")
        reference = state.mass_g if state.dispatched_mass_g is None else state.dispatched_mass_g
        _no_gain(data["mass_g"], reference, tolerance, "/body/data/mass_g")
    elif kind == "lot_formed":
        _fresh_of(state, actor, "/body/stream")
        inputs = data["inputs"]
        _exactly_linked(entry, inputs, "/body/data/inputs", "inputs")
        total = 0
        for i, tag in enumerate(inputs):
            field = f"/body/data/inputs/{i}"
            member = _live(tags[tag], field)
            _holder(member, actor, field)
            _not_in_transit(member, field)
            total += member.mass_g or 0
        _balance(data["mass_g"], total, tolerance, "/body/data/mass_g", "the sum of the inputs")
    elif kind == "lot_split":
        _live(state, "/body/stream")
        _holder(state, actor, "/body/actor")
        _not_in_transit(state, "/body/stream")
        outputs = [output["tag"] for output in data["outputs"]]
        _exactly_linked(entry, outputs, "/body/data/outputs", "outputs")
        for i, tag in enumerate(outputs):
            _fresh_of(tags[tag], actor, f"/body/data/outputs/{i}/tag")
        total = sum(output["mass_g"] for output in data["outputs"])
        _balance(total, state.mass_g or 0, tolerance, "/body/data/outputs", "the lot's mass")
    elif kind == "tag_consumed":
        _live(state, "/body/stream")
        _holder(state, actor, "/body/actor")
        _not_in_transit(state, "/body/stream")
        if data.get("mass_g") is not None:
            _no_gain(data["mass_g"], state.mass_g, tolerance, "/body/data/mass_g")
    elif kind == "tag_voided":
        if state.status in FINISHED:
            raise RuleBroken("tag.finished", "/body/stream", f"{state.tag} is already {state.status}")
        if role_of(actor) != "operator":
            owner = state.issued_to if state.status == ISSUED else state.holder
            if actor != owner:
                raise RuleBroken("custody.not_holder", "/body/actor", f"{state.tag} is held by {owner}")
