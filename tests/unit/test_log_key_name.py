"""A genesis must name its log with a C2SP note key name (protocol 6 and 11.2, since 1.8): the ledger and the
reference auditor refuse a name with a space, a `+` or a control character, at the same field."""

from __future__ import annotations

import pytest

from domain.errors import RuleViolation
from domain.payloads import parse_data
from ledger.keys import KeyPair
from verification.event_data import DataError, check_event_shape


def genesis_data(name: str) -> dict:
    return {"ledger": "test", "operator": {"org": "itsci", "name": "ITSCI", "country": "CD"},
            "root_key": KeyPair.generate().public_key,
            "log_key": {"name": name, "public_key": KeyPair.generate().public_key}, "mass_tolerance_ppm": 20_000}


def genesis_body(name: str) -> dict:
    return {"v": 1, "id": "00000000-0000-4000-8000-000000000000", "type": "ledger_created", "stream": "ledger",
            "prev": None, "actor": "itsci", "key": "0" * 16, "time": "2026-12-05T00:00:00Z", "data": genesis_data(name)}


@pytest.mark.parametrize("name", ["demo log", "a+b", "tab\there", ""])
def test_a_log_named_outside_the_note_key_names_is_refused_by_both(name: str) -> None:
    with pytest.raises(RuleViolation) as refused:
        parse_data("ledger_created", genesis_data(name))
    assert refused.value.rule == "envelope.malformed" and refused.value.field == "/body/data/log_key/name"
    with pytest.raises(DataError) as shape:
        check_event_shape(genesis_body(name))
    assert "log_key/name" in str(shape.value)


@pytest.mark.parametrize("name", ["tagledger.local/0123456789abcdef/log", "example.org/log", "demo"])
def test_valid_names_are_accepted_by_both(name: str) -> None:
    parse_data("ledger_created", genesis_data(name))
    check_event_shape(genesis_body(name))
