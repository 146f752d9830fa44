"""`ledger.row_json.row_json` writes exactly `jcs` (the projections' rows), faster when it can."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import row_json as module
from ledger.row_json import fast_jcs, fast_jcs_parsed, row_json
from tests.unit.test_canonical import integers, json_values
from verification.canonical import MAX_SAFE_INTEGER, NonCanonicalValue, jcs, parse_json

_ascii_texts = st.text(st.characters(max_codepoint=0x7F), max_size=8)
ascii_values = st.recursive(
    st.none() | st.booleans() | integers | _ascii_texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(
        st.characters(max_codepoint=0x7F), max_size=3), children, max_size=6),
    max_leaves=24,
)


@given(json_values | ascii_values)
def test_the_same_bytes_as_jcs(value) -> None:
    assert row_json(value) == jcs(value)


def test_a_tag_state_is_written_by_the_fast_path(monkeypatch) -> None:
    state = {"tag": "CD-S01-000001", "status": "in_custody", "holder": "trader-01", "mass_g": 49_900,
             "origin": {"site": "site-01", "gps": {"lat": "-1.5", "lon": "28.9"}, "ore": None}, "inputs": [],
             "events": 3, "head": {"hash": "0f" * 32, "seq": MAX_SAFE_INTEGER}, "finished": False}
    expected = jcs(state)
    monkeypatch.setattr(module, "jcs", lambda value: pytest.fail("jcs was called"))
    assert row_json(state) == expected


@pytest.mark.parametrize("value", [
    {"mass_g": 1.5}, {"mass_g": math.nan}, {"mass_g": math.inf}, [MAX_SAFE_INTEGER + 1], [-(2**70)],
    {1: "x"}, {"a": ("tuple",)}, {"a": b"bytes"},
])
def test_outside_the_subset_it_refuses_as_jcs_does(value) -> None:
    with pytest.raises(NonCanonicalValue):
        jcs(value)
    with pytest.raises(NonCanonicalValue):
        row_json(value)


@pytest.mark.parametrize("text", ["é", "\u2028", "\x7f", "a\"b", "a\\b", "\n", "\U0001F600"])
def test_text_that_orjson_might_write_otherwise_goes_to_jcs(text) -> None:
    assert row_json({"note": text, text: 1}) == jcs({"note": text, text: 1})


# -- fast_jcs / fast_jcs_parsed: the writer's faster canonical bytes of an envelope's body (issue 13) --------------

@given(json_values | ascii_values)
def test_fast_jcs_is_jcs_or_none(value) -> None:
    raw = fast_jcs(value)
    assert raw is None or raw == jcs(value)


@given(json_values | ascii_values)
def test_fast_jcs_parsed_is_jcs_or_none_on_what_parse_json_returns(value) -> None:
    parsed = parse_json(jcs(value))
    raw = fast_jcs_parsed(parsed)
    assert raw is None or raw == jcs(value)


@given(ascii_values)
def test_fast_jcs_writes_plain_ascii_values(value) -> None:
    assert (fast_jcs(value) is None) == ("\\" in jcs(value).decode())  # only an escape sends it to jcs


@pytest.mark.parametrize("value", [
    {"mass_g": 1.5}, {"mass_g": math.nan}, {"mass_g": math.inf}, [MAX_SAFE_INTEGER + 1], [-(2**70)],
    {1: "x"}, {"a": ("tuple",)}, {"a": b"bytes"}, {"a": True, "b": [1.0]}, {"s": "\ud800"},
])
def test_fast_jcs_leaves_what_is_outside_the_subset_to_jcs(value) -> None:
    assert fast_jcs(value) is None


@pytest.mark.parametrize("text", ["é", "\u2028", "a\"b", "a\\b", "\n", "\U0001F600"])
def test_fast_jcs_leaves_non_ascii_and_escapes_to_jcs(text) -> None:
    assert fast_jcs({"note": text}) is None
    assert fast_jcs_parsed(parse_json(jcs({"note": text}))) is None


def test_fast_jcs_writes_del_as_jcs_does() -> None:  # ASCII, and neither escapes it
    assert fast_jcs({"note": "\x7f"}) == fast_jcs_parsed({"note": "\x7f"}) == jcs({"note": "\x7f"})
