"""verification.canonical: RFC 8785 (JCS) on the protocol's subset, docs/protocol.md section 1.

``rfc8785`` (a full JCS implementation) is the oracle; it is used here only, never by
``verification/``.
"""

from __future__ import annotations

import enum
import json
import json.encoder
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from verification import canonical
from verification.canonical import (
    MAX_SAFE_INTEGER,
    MalformedJSON,
    NonCanonicalValue,
    jcs,
    jcs_parsed,
    json_path,
    json_pointer,
    parse_json,
)

# --------------------------------------------------------------------------------------------
# Strategies: JSON values inside the subset
# --------------------------------------------------------------------------------------------

_characters = st.one_of(
    st.characters(codec="utf-8"),  # every Unicode scalar value (no surrogates)
    st.characters(max_codepoint=0x1F),  # control characters (escaped)
    st.sampled_from('"\\/\x7f\x80\u2028\u2029\ufeff\ufffd\uffff'),  # specials, noncharacters
    st.characters(min_codepoint=0xE000, max_codepoint=0xF8FF),  # BMP private use
    st.characters(min_codepoint=0xF900, max_codepoint=0xFFFF, exclude_categories=("Cs",)),
    st.characters(min_codepoint=0x10000),  # supplementary planes: surrogate pairs in UTF-16
    st.characters(min_codepoint=0xF0000, max_codepoint=0x10FFFF),  # supplementary private use
)
texts = st.text(_characters, max_size=8)
# Short names from the same alphabet, so that siblings often share prefixes and the order of a
# BMP character above U+E000 against a supplementary one is exercised (JCS section 3.2.3).
names = st.text(_characters, max_size=3)
integers = st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | st.sampled_from(
    [0, -1, 1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 2**31, -(2**31), 2**32, 10**15]
)
scalars = st.none() | st.booleans() | integers | texts
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(names, children, max_size=6),
    max_leaves=24,
)


def same(a: Any, b: Any) -> bool:
    """Equal *and* of the same JSON types all the way down (``True != 1`` here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# --------------------------------------------------------------------------------------------
# Agreement with RFC 8785
# --------------------------------------------------------------------------------------------


@given(json_values)
def test_jcs_is_rfc8785_on_the_subset(value: Any) -> None:
    assert jcs(value) == rfc8785.dumps(value)


@given(st.dictionaries(names, st.none(), min_size=2, max_size=12))
def test_member_order_is_utf16_code_units(value: dict[str, None]) -> None:
    encoded = jcs(value)
    assert encoded == rfc8785.dumps(value)
    order = list(json.loads(encoded))
    assert order == sorted(value, key=lambda name: name.encode("utf-16-be"))


@given(json_values)
def test_round_trip(value: Any) -> None:
    encoded = jcs(value)
    assert same(parse_json(encoded), value)
    assert jcs(parse_json(encoded)) == encoded


@given(json_values)
def test_parse_json_reads_any_json_layout(value: Any) -> None:
    pretty = json.dumps(value, indent=2, ensure_ascii=True).encode("ascii")
    assert same(parse_json(pretty), value)
    assert jcs(parse_json(pretty)) == jcs(value)


@given(json_values, st.booleans())
def test_jcs_parsed_is_jcs_on_what_parse_json_returns(value: Any, pretty: bool) -> None:
    # issue 13: the write path encodes request bodies with the C encoder; never other bytes than jcs
    data = json.dumps(value, indent=1, ensure_ascii=True).encode("ascii") if pretty else jcs(value)
    parsed = parse_json(data)
    assert jcs_parsed(parsed) == jcs(parsed) == rfc8785.dumps(value)


@given(st.dictionaries(names, st.none() | names, min_size=2, max_size=12))
def test_jcs_parsed_orders_names_by_utf16_code_units(value: dict[str, Any]) -> None:
    # the C encoder sorts by code point: a name beyond U+FFFF sends it to jcs
    assert jcs_parsed(parse_json(jcs(value))) == rfc8785.dumps(value)


def test_jcs_parsed_falls_back_where_code_points_and_utf16_disagree() -> None:
    value = {"\U0001F600": 1, "\uff01": 2}  # U+FF01 sorts after U+1F600 in UTF-16 code units, before by code point
    assert list(json.loads(jcs_parsed(value))) == ["\U0001F600", "\uff01"]
    assert jcs_parsed(value) == jcs(value)


def _jcs_string_reference(text: str) -> str:
    """JCS section 3.2.2.2, written out: the two-character escapes, \\u00xx below U+0020."""
    short = {
        '"': '\\"',
        "\\": "\\\\",
        "\b": "\\b",
        "\f": "\\f",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
    }
    out = []
    for ch in text:
        if ch in short:
            out.append(short[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def test_string_escaping_is_jcs_for_every_unicode_scalar_value() -> None:
    """The stdlib encoder jcs() uses escapes as JCS section 3.2.2.2 says, for all of Unicode."""
    if json.encoder.c_encode_basestring is not None:
        assert canonical._quote is json.encoder.c_encode_basestring  # the C encoder
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert canonical._quote(every) == _jcs_string_reference(every)
    assert jcs(every) == _jcs_string_reference(every).encode("utf-8") == rfc8785.dumps(every)
    # and character by character for the ones that are escaped or sit at boundaries
    for c in [*range(0x00, 0x81), 0x7F, 0x2028, 0x2029, 0xFEFF, 0xFFFF, 0x10000, 0x10FFFF]:
        assert jcs(chr(c)) == rfc8785.dumps(chr(c)), hex(c)


def test_control_characters_use_lowercase_hex() -> None:
    assert jcs("\x1f\x0b\x00") == b'"\\u001f\\u000b\\u0000"'
    assert jcs("\x7f") == b'"\x7f"'  # DEL is not a control character for JCS
    assert jcs("\b\f\n\r\t") == b'"\\b\\f\\n\\r\\t"'
    assert jcs("/") == b'"/"'  # solidus is not escaped


# --------------------------------------------------------------------------------------------
# The examples of RFC 8785 that fit the subset
# --------------------------------------------------------------------------------------------

# RFC 8785 section 3.2.3, "Sorting of Object Properties": the input...
RFC8785_SORTING_INPUT = (
    rb'{"\u20ac": "Euro Sign", "\r": "Carriage Return",'
    rb' "\ufb33": "Hebrew Letter Dalet With Dagesh",'
    rb' "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control",'
    rb' "\u00f6": "Latin Small Letter O With Diaeresis"}'
)
# ...and the order the RFC gives for it, as canonical UTF-8 bytes.
RFC8785_SORTING_OUTPUT = (
    b'{"\\r":"Carriage Return",'
    b'"1":"One",'
    b'"\xc2\x80":"Control",'
    b'"\xc3\xb6":"Latin Small Letter O With Diaeresis",'
    b'"\xe2\x82\xac":"Euro Sign",'
    b'"\xf0\x9f\x98\x80":"Emoji: Grinning Face",'
    b'"\xef\xac\xb3":"Hebrew Letter Dalet With Dagesh"}'
)

# RFC 8785 section 3.2.2, the sample input, and section 3.2.4, its canonical UTF-8 bytes.
RFC8785_SAMPLE_INPUT = rb"""{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"""
RFC8785_SAMPLE_OUTPUT = bytes.fromhex(
    "7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72"
    "75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a"
    "5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31"
    "65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37"
    "5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30"
    "30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d"
)
RFC8785_NUMBERS_MEMBER = b'"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'


def test_rfc8785_sorting_example() -> None:
    value = parse_json(RFC8785_SORTING_INPUT)
    assert jcs(value) == RFC8785_SORTING_OUTPUT
    # The example discriminates: by code point, U+FB33 would come before U+1F600.
    assert list(value)[4] == "\U0001f600"
    assert sorted(value)[-1] == "\U0001f600"


def test_rfc8785_sample_without_its_numbers() -> None:
    assert rfc8785.dumps(json.loads(RFC8785_SAMPLE_INPUT)) == RFC8785_SAMPLE_OUTPUT  # transcription
    with pytest.raises(MalformedJSON, match="not an integer"):
        parse_json(RFC8785_SAMPLE_INPUT)  # its numbers are outside the subset
    subset_input = RFC8785_SAMPLE_INPUT.replace(
        b'  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n',
        b"",
    )
    assert b"numbers" not in subset_input
    assert jcs(parse_json(subset_input)) == RFC8785_SAMPLE_OUTPUT.replace(
        RFC8785_NUMBERS_MEMBER, b""
    )


# --------------------------------------------------------------------------------------------
# What jcs() refuses
# --------------------------------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    ONE = 1


class Name(str):
    pass


@pytest.mark.parametrize(
    ("value", "path", "reason"),
    [
        ({"body": {"data": {"mass_g": 1.5}}}, "$.body.data.mass_g", "float 1.5"),
        ({"a": 0.0}, "$.a", "float 0.0"),
        ({"a": -0.0}, "$.a", "float -0.0"),
        ({"a": float("nan")}, "$.a", "float nan"),
        ({"a": float("inf")}, "$.a", "float inf"),
        ([1, [2, 1e3]], "$[1][1]", "float 1000.0"),
        ({"a": 2**53}, "$.a", "outside"),
        ({"a": -(2**53)}, "$.a", "outside"),
        ([10**400], "$[0]", "outside"),
        ({"a": [None, "ok", "bad\ud800"]}, "$.a[2]", "lone surrogate"),
        ({"a": "\udc00"}, "$.a", "lone surrogate"),
        ({"a": "\ud83d\ude00"}, "$.a", "lone surrogate"),  # a pair as two code points is not text
        ({"a": {"bad\ud800": 1}}, "$.a", "member name"),
        ({"a": {1: "one"}}, "$.a", "member name 1 is a int"),
        ({"a": {"x": 1, 2: "two"}}, "$.a", "member name 2"),
        ({"a": {None: 1}}, "$.a", "member name None"),
        ({"a": {True: 1}}, "$.a", "member name True"),
        ({"a": {Name("x"): 1}}, "$.a", "member name"),
        ({"a": (1, 2)}, "$.a", "tuple"),
        ({"a": {1, 2}}, "$.a", "set"),
        ({"a": b"bytes"}, "$.a", "bytes"),
        ({"a": Decimal("1")}, "$.a", "Decimal"),
        ({"a": Colour.RED}, "$.a", "Colour"),
        ({"a": Level.ONE}, "$.a", "Level"),
        ({"a": Name("x")}, "$.a", "Name"),
        ({"a": OrderedDict(b=1)}, "$.a", "OrderedDict"),
        ({"tag:ABC": 1.5}, '$["tag:ABC"]', "float"),
    ],
)
def test_jcs_refuses_values_outside_the_subset(value: Any, path: str, reason: str) -> None:
    with pytest.raises(NonCanonicalValue) as caught:
        jcs(value)
    assert json_path(caught.value.path) == path
    assert str(caught.value).startswith(path + ": ")
    assert reason in caught.value.reason


def test_error_names_the_path_and_the_pointer() -> None:
    with pytest.raises(NonCanonicalValue) as caught:
        jcs({"body": {"data": {"mass_g": 1.5}}})
    assert str(caught.value) == "$.body.data.mass_g: float 1.5 is not allowed; numbers are integers"
    assert caught.value.pointer == "/body/data/mass_g"
    assert json_pointer(("links", "a/b~c", 0)) == "/links/a~1b~0c/0"
    assert isinstance(caught.value, ValueError)


def test_integer_range_is_inclusive() -> None:
    assert jcs([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]) == b"[9007199254740991,-9007199254740991]"
    assert jcs(MAX_SAFE_INTEGER) == rfc8785.dumps(MAX_SAFE_INTEGER)


def test_bool_is_not_an_integer() -> None:
    assert jcs(True) == b"true" and jcs(False) == b"false" and jcs(None) == b"null"
    assert jcs(1) == b"1" and jcs(0) == b"0"
    assert jcs({"a": True}) != jcs({"a": 1})
    assert jcs([False]) != jcs([0])
    assert same(parse_json(b"[true,1,false,0]"), [True, 1, False, 0])
    assert not same(parse_json(b"[1]"), [True])


def test_self_containing_value_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(NonCanonicalValue, match="nested too deeply"):
        jcs(loop)


def test_empty_containers_and_nesting() -> None:
    assert jcs({"b": [], "a": {}, "c": [{}, [[]]]}) == b'{"a":{},"b":[],"c":[{},[[]]]}'


# --------------------------------------------------------------------------------------------
# What parse_json() refuses
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a":1,"a":2}', "duplicate member name 'a'"),
        (b'{"a":1,"\\u0061":1}', "duplicate member name 'a'"),  # same name, other spelling
        (b'[{"x":{"y":1,"y":1}}]', "duplicate member name 'y'"),
        (b"1.0", "not an integer"),
        (b"1e3", "not an integer"),
        (b"1E+2", "not an integer"),
        (b"-0.0", "not an integer"),
        (b'{"mass_g":48250.5}', "not an integer"),
        (b"NaN", "NaN is not JSON"),
        (b"[Infinity]", "Infinity is not JSON"),
        (b"-Infinity", "-Infinity is not JSON"),
        (b"9007199254740992", "outside"),
        (b"-9007199254740992", "outside"),
        (b"1" + b"0" * 5000, "outside"),
        (b'"\xff"', "not UTF-8 at byte 1"),
        (b'"\xc0\xaf"', "not UTF-8"),  # overlong "/"
        (b'"\xed\xa0\x80"', "not UTF-8"),  # an encoded surrogate (CESU-8)
        (b'\xef\xbb\xbf{"a":1}', "Expecting value"),  # a byte order mark
        (b'"\\ud800"', "lone surrogate"),
        (b'["ok", "\\uDC00x"]', "lone surrogate"),
        (b'{"\\ud83d": 1}', "lone surrogate"),  # in a member name
        (b'"\\ude00\\ud83d"', "lone surrogate"),  # a pair in the wrong order
        (b'{"a":1} x', "Extra data"),
        (b'"a\nb"', "Invalid control character"),
        (b"", "Expecting value"),
        (b"{'a':1}", "Expecting property name"),
        (b"[1,]", "Expecting value"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_parse_json_refuses(data: bytes, message: str) -> None:
    with pytest.raises(MalformedJSON, match=message.replace("+", r"\+")):
        parse_json(data)


def test_parse_json_accepts_escapes_and_pairs() -> None:
    assert parse_json(b'"\\ud83d\\ude00"') == "\U0001f600"
    assert parse_json(b'"\\\\ud800"') == "\\ud800"  # an escaped backslash, then plain text
    assert parse_json(b' {"a" : [ 1 , -2 ] }\n') == {"a": [1, -2]}
    assert parse_json(bytearray(b"[]")) == [] and parse_json(memoryview(b"{}")) == {}
    assert parse_json(b"-0") == 0  # an integer zero (jcs writes it "0")


def test_parse_json_takes_bytes_only() -> None:
    with pytest.raises(TypeError):
        parse_json('{"a":1}')  # type: ignore[arg-type]


def test_errors_are_value_errors() -> None:
    assert issubclass(MalformedJSON, ValueError) and issubclass(NonCanonicalValue, ValueError)
