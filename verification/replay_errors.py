"""The errors of a log replay: which entry, which rule, why.

:class:`ReplayError` is what a replay raises at the first entry that breaks a rule. Its ``rule`` is a rule
name of docs/protocol.md section 7 (``signature.invalid``, ``stream.conflict``, ``key.revoked``...) or one
of the rules about the log itself, which a replay checks before the rules of the entry's event:

==========================  ==================================================================================
``entry.malformed``          the bytes are not the canonical encoding of a log entry (section 5)
``entry.seq``                the entry's ``seq`` is not its position in the log (an entry is missing,
                             repeated, inserted or out of order)
``entry.received``           ``received`` is earlier than the previous entry's (it never decreases)
``genesis.invalid``          entry 0 is not a ``ledger_created`` event that starts the ``ledger`` stream,
                             is acted by the operator it names and signed by the ``root_key`` it names
                             (a ``ledger_created`` after entry 0 is ``stream.conflict``, as the ledger
                             answers it)
``genesis.root_key``         the root key is not the one the caller pinned
``genesis.log_key``          the log key (or its name) is not the one the caller pinned
``custody.unapplicable``     the custody fold cannot apply the event (a check the replay does not repeat
                             from section 7 was not met; never on a log the ledger wrote)
==========================  ==================================================================================
"""

from __future__ import annotations

__all__ = ["ReplayError", "RuleBroken"]


class RuleBroken(Exception):
    """Internal: a rule broken by the entry being replayed (the replay adds the entry's seq)."""

    def __init__(self, rule: str, field: str, message: str) -> None:
        self.rule = rule
        self.field = field
        self.message = message
        super().__init__(f"{rule} at {field or '/'}: {message}")


class ReplayError(ValueError):
    """Entry ``seq`` (its position in the log) breaks ``rule``.

    ``field`` is a JSON Pointer into the entry's envelope (``/body/prev``) when the rule is about one
    field, ``""`` otherwise; ``message`` says what is wrong for a person.
    """

    def __init__(self, seq: int, rule: str, message: str, field: str = "") -> None:
        self.seq = seq
        self.rule = rule
        self.message = message
        self.field = field
        where = f" at {field}" if field else ""
        super().__init__(f"entry #{seq}: {rule}{where}: {message}")

    def __reduce__(self):  # noqa: ANN204 - keep the fields across processes
        return (type(self), (self.seq, self.rule, self.message, self.field))
