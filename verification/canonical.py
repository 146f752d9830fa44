"""Canonical JSON: RFC 8785 (JCS) on the protocol's subset -- docs/protocol.md section 1.

The subset is: objects (``dict`` with ``str`` keys), arrays (``list``), strings (``str``), integers
(``int``) in ``[-(2**53 - 1), 2**53 - 1]``, ``true``/``false`` (``bool``) and ``null`` (``None``).
Exactly these built-in types are accepted -- no subclasses (``bool`` is not an integer here, a
``str``-valued enum is not a string), no tuples, no floats, no other mappings.

On this subset RFC 8785 needs no number formatting, so :func:`jcs` is:

- strings escaped as JCS section 3.2.2.2 says: ``\\"``, ``\\\\``, ``\\b``, ``\\f``, ``\\n``,
  ``\\r``, ``\\t``, the other characters below U+0020 as ``\\u00xx`` (lowercase hex), everything
  else literal.  That is exactly what the standard library's ``json.encoder.encode_basestring`` (the
  ``ensure_ascii=False`` encoder, in C) produces; ``tests/unit/test_canonical.py`` checks it for
  every Unicode scalar value;
- integers in decimal, without a sign for zero or positive values;
- object members sorted by the UTF-16 code units of their names (JCS section 3.2.3);
- no whitespace; UTF-8 output (which rejects lone surrogates).

:func:`parse_json` is the matching strict reader: it returns only values inside the subset.
"""

from __future__ import annotations

import json
import re
from json.encoder import c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring as _quote
from typing import Any, NoReturn

__all__ = [
    "MAX_SAFE_INTEGER",
    "MalformedJSON",
    "NonCanonicalValue",
    "PathSegment",
    "jcs",
    "jcs_parsed",
    "json_path",
    "json_pointer",
    "parse_json",
    "sorted_compact",
]

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer magnitude allowed anywhere in the protocol (section 1)."""

PathSegment = str | int
"""A member name (``str``) or an array index (``int``)."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


def json_path(path: tuple[PathSegment, ...]) -> str:
    """Render ``path`` as a JSONPath expression such as ``$.body.data.tags[3]``."""
    parts = ["$"]
    for segment in path:
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif _IDENTIFIER.fullmatch(segment):
            parts.append(f".{segment}")
        else:
            parts.append(f"[{json.dumps(segment)}]")
    return "".join(parts)


def json_pointer(path: tuple[PathSegment, ...]) -> str:
    """Render ``path`` as an RFC 6901 JSON Pointer such as ``/body/data/tags/3``."""
    return "".join("/" + str(s).replace("~", "~0").replace("/", "~1") for s in path)


class NonCanonicalValue(ValueError):
    """A value outside the protocol's JSON subset (section 1), so it has no canonical encoding.

    ``path`` locates the offending value from the root (member names and array indices);
    ``reason`` says what is wrong with it.  ``str(error)`` names both, e.g.
    ``$.body.data.mass_g: float 1.5 is not allowed; numbers are integers``.
    """

    def __init__(self, reason: str, path: tuple[PathSegment, ...] = ()) -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{json_path(path)}: {reason}")

    @property
    def pointer(self) -> str:
        """The location as a JSON Pointer (``""`` for the root)."""
        return json_pointer(self.path)


class MalformedJSON(ValueError):
    """Bytes that are not JSON inside the protocol's subset (section 1)."""


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


class _Reject(Exception):
    """Internal: raised at the offending value; each enclosing container adds its segment."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.reversed_path: list[PathSegment] = []


def _utf16_code_units(key: str) -> bytes:
    # Big-endian UTF-16 compares bytewise exactly like the sequence of 16-bit code units.
    return key.encode("utf-16-be")


def _describe(value: object) -> str:
    if isinstance(value, float):
        return f"float {value!r} is not allowed; numbers are integers"
    if type(value) is int:
        return f"integer {value} is outside [-(2**53 - 1), 2**53 - 1]"
    return f"{type(value).__name__} is not a JSON type of the protocol"


def _bad_name(obj: dict[Any, Any]) -> str:
    """Say what is wrong with the member names of ``obj`` (which could not be sorted)."""
    for name in obj:
        if type(name) is not str:
            return f"member name {name!r} is a {type(name).__name__}, not a string"
        if not _is_scalar_values(name):
            return f"member name {name!r} contains a lone surrogate"
    return "member names cannot be sorted"


def _sorted_names(obj: dict[Any, Any]) -> list[str]:
    """The member names of ``obj`` in JCS order (section 3.2.3: by UTF-16 code units)."""
    names = sorted(obj)  # raises TypeError for mixed key types
    if not "".join(names).isascii():  # join raises TypeError for a non-str key
        # Code point order and UTF-16 order differ only between U+E000..U+FFFF and the
        # supplementary planes, so ASCII-only names (the common case) are already sorted.
        names.sort(key=_utf16_code_units)  # raises for a non-str name or a lone surrogate
    return names


def _encode(value: Any, out: list[str]) -> None:
    """Append the canonical text of ``value`` to ``out`` (its UTF-8 encoding is checked later)."""
    append = out.append
    t = type(value)
    if t is str:
        append(_quote(value))
    elif t is dict:
        if not value:
            append("{}")
            return
        try:
            names = _sorted_names(value)
        except (TypeError, UnicodeEncodeError):
            raise _Reject(_bad_name(value)) from None
        append("{")
        for name in names:
            if type(name) is not str:
                raise _Reject(f"member name {name!r} is a {type(name).__name__}, not a string")
            append(_quote(name))
            append(":")
            member = value[name]
            mt = type(member)
            try:
                if mt is str:
                    append(_quote(member))
                elif mt is int and -MAX_SAFE_INTEGER <= member <= MAX_SAFE_INTEGER:
                    append(int.__repr__(member))
                else:
                    _encode(member, out)
            except _Reject as reject:
                reject.reversed_path.append(name)
                raise
            append(",")
        out[-1] = "}"  # replaces the trailing comma
    elif t is list:
        if not value:
            append("[]")
            return
        append("[")
        for index, item in enumerate(value):
            try:
                _encode(item, out)
            except _Reject as reject:
                reject.reversed_path.append(index)
                raise
            append(",")
        out[-1] = "]"
    elif t is int:
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise _Reject(_describe(value))
        append(int.__repr__(value))
    elif value is True:
        append("true")
    elif value is False:
        append("false")
    elif value is None:
        append("null")
    else:
        raise _Reject(_describe(value))


def _is_scalar_values(text: str) -> bool:
    """True if ``text`` is valid Unicode (no lone surrogates), i.e. encodable as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _find_lone_surrogate(value: Any, path: tuple[PathSegment, ...] = ()) -> None:
    """Raise :class:`NonCanonicalValue` at the first string of ``value`` with a lone surrogate."""
    if isinstance(value, str):
        if not _is_scalar_values(value):
            raise NonCanonicalValue(f"string {value!r} contains a lone surrogate", path)
    elif isinstance(value, dict):
        for name, member in value.items():
            if isinstance(name, str) and not _is_scalar_values(name):
                raise NonCanonicalValue(f"member name {name!r} contains a lone surrogate", path)
            _find_lone_surrogate(member, (*path, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _find_lone_surrogate(item, (*path, index))
    return None


def jcs(value: Any) -> bytes:
    """The canonical encoding of ``value``: RFC 8785 restricted to the subset of section 1.

    Raises :class:`NonCanonicalValue` (naming the path, e.g. ``$.body.data.mass_g``) for a
    float, an integer outside ``[-(2**53 - 1), 2**53 - 1]``, a string with a lone surrogate, a
    non-string member name, or any type other than ``dict``, ``list``, ``str``, ``int``,
    ``bool`` and ``None``.
    """
    out: list[str] = []
    try:
        _encode(value, out)
    except _Reject as reject:
        raise NonCanonicalValue(reject.reason, tuple(reversed(reject.reversed_path))) from None
    except RecursionError:
        raise NonCanonicalValue("nested too deeply (or contains itself)") from None
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        _find_lone_surrogate(value)
        raise  # unreachable: a lone surrogate is always found above


_SORTED_COMPACT = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), check_circular=False, allow_nan=False
)
# Its C function, made once, exactly as `JSONEncoder.iterencode` makes it on every call of `.encode` (markers None:
# no circularity check); it returns the text in chunks. None on a Python without the _json accelerator.
_sorted_compact_chunks = None if c_make_encoder is None else c_make_encoder(
    None, _SORTED_COMPACT.default, _quote, _SORTED_COMPACT.indent, _SORTED_COMPACT.key_separator,
    _SORTED_COMPACT.item_separator, _SORTED_COMPACT.sort_keys, _SORTED_COMPACT.skipkeys, _SORTED_COMPACT.allow_nan)


def sorted_compact(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)``, faster:
    the standard library's C encoder, made once instead of on every call (``JSONEncoder.encode`` makes it again
    each time through ``iterencode``). Names are sorted by code point; on values inside the protocol's subset
    whose text is ASCII, this is :func:`jcs` (``tests/unit/test_entry_checks_fast.py`` compares them)."""
    if _sorted_compact_chunks is None:  # pragma: no cover - CPython without its _json accelerator
        return _SORTED_COMPACT.encode(value)
    return "".join(_sorted_compact_chunks(value, 0))
_SUPPLEMENTARY = re.compile("[\U00010000-\U0010ffff]")


def jcs_parsed(value: Any) -> bytes:
    """:func:`jcs` of a value that :func:`parse_json` returned (and nobody changed since), faster.

    Such a value is inside the subset by construction, so nothing needs checking, and the standard library's C
    encoder writes it as JCS does (the same string escapes, ``encode_basestring``; integers in decimal; no
    whitespace) except for one thing: it sorts member names by code point, JCS by UTF-16 code unit, which differ
    only when a name holds a character beyond U+FFFF. Whenever the text holds such a character (or anything the
    C encoder cannot write as UTF-8), this falls back to :func:`jcs`. ``tests/unit/test_canonical.py`` compares
    the two on every generated value.
    """
    text = sorted_compact(value)
    if text.isascii():  # the usual case, known without reading the text: no character beyond U+FFFF
        return text.encode("ascii")
    if _SUPPLEMENTARY.search(text) is None:
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            pass
    return jcs(value)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------

_MAX_INTEGER_DIGITS = len(str(MAX_SAFE_INTEGER))
# A \u escape in the surrogate range; only then can the decoder produce a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise MalformedJSON(f"duplicate member name {name!r}")
            seen.add(name)
    return obj


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INTEGER_DIGITS or not (
        -MAX_SAFE_INTEGER <= (number := int(text)) <= MAX_SAFE_INTEGER
    ):
        raise MalformedJSON(f"integer {text} is outside [-(2**53 - 1), 2**53 - 1]")
    return number


def _no_float(text: str) -> NoReturn:
    raise MalformedJSON(f"number {text} is not an integer; numbers are integers")


def _no_constant(text: str) -> NoReturn:
    raise MalformedJSON(f"{text} is not JSON")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_object,
    parse_float=_no_float,
    parse_int=_integer,
    parse_constant=_no_constant,
    strict=True,  # no raw control characters inside strings
)


def parse_json(data: bytes) -> Any:
    """Parse ``data`` as strict JSON inside the protocol's subset (section 1).

    Rejects, with :class:`MalformedJSON`: bytes that are not UTF-8 (including a byte order mark
    and UTF-8-encoded surrogates), anything that is not RFC 8259 JSON, duplicate member names,
    numbers with a fraction or exponent, ``NaN``/``Infinity``, integers outside
    ``[-(2**53 - 1), 2**53 - 1]`` and strings whose escapes leave a lone surrogate.

    Whitespace and member order are free here; :func:`jcs` of the result gives the canonical
    bytes (a reader that needs canonical input compares them, as log entries do, section 5).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"parse_json takes bytes, not {type(data).__name__}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedJSON(f"not UTF-8 at byte {error.start}") from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise MalformedJSON(f"{error.msg} (line {error.lineno}, column {error.colno})") from None
    except RecursionError:
        raise MalformedJSON("nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            _find_lone_surrogate(value)
        except NonCanonicalValue as error:
            raise MalformedJSON(str(error)) from None
        except RecursionError:
            raise MalformedJSON("nested too deeply") from None
    return value
