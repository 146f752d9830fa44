"""The canonical bytes (JCS) of the projections' rows, written by orjson whenever that gives the same bytes.

The custody and flags projections store `jcs(state)` for every tag a page changes; `verification.canonical.jcs`,
written in Python for the offline verifier, was a fifth of their CPU (issue 13). For a value made only of
dicts with text names, lists, text, booleans, None and integers within ±(2**53 - 1), orjson's sorted output is
JCS's to the byte as long as it is plain ASCII with no escape: JCS and orjson then write every string as it is,
order ASCII member names alike and write such integers in decimal. Anything else (a float, a larger integer,
any non-ASCII or escaped character) is written by `jcs` itself, which also refuses what is outside the subset.
`tests/unit/test_row_json.py` compares the two.
"""

from __future__ import annotations

from typing import Any

import orjson

from verification.canonical import jcs

_MAX = 2**53 - 1


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -_MAX <= value <= _MAX
    if kind is dict:
        for name, item in value.items():
            if type(name) is not str or not _plain(item):
                return False
        return True
    if kind is list:
        for item in value:
            if not _plain(item):
                return False
        return True
    return False


def row_json(value: Any) -> bytes:
    """`jcs(value)`, faster for a plain value."""
    try:
        raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return jcs(value)
    if raw.isascii() and b"\\" not in raw and _plain(value):
        return raw
    return jcs(value)


def fast_jcs(value: Any) -> bytes | None:
    """`jcs(value)` when orjson writes the same bytes (a plain value, plain ASCII output with no escape), else
    None: the caller then asks `jcs`, which also says what is outside the subset (`Envelope.from_json`'s `fast`)."""
    try:
        raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return None
    if raw.isascii() and b"\\" not in raw and _plain(value):
        return raw
    return None


def fast_jcs_parsed(value: Any) -> bytes | None:
    """`fast_jcs` of a value `verification.canonical.parse_json` returned, unchanged since: it is inside the subset
    by construction (dicts with text names, lists, text, booleans, None, integers within ±(2**53 - 1)), so only
    the output needs looking at."""
    try:
        raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return None
    if raw.isascii() and b"\\" not in raw:
        return raw
    return None
