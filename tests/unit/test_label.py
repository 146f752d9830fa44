"""Signed QR labels, `verification.label` (docs/protocol.md section 13): sign, parse, verify, and every refusal."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from verification.encoding import b64url_decode, b64url_encode, key_id
from verification.label import (
    LabelError,
    LabelPayload,
    format_label_url,
    label_message,
    parse_label,
    parse_label_url,
    sign_label,
    verify_label,
)

ORIGIN = "tagledger.test/log"
BASE = "https://ledger.example.org"
TAG = "KAL-000001"


class Key:
    def __init__(self, seed: int) -> None:
        self.private = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
        self.raw = self.private.public_key().public_bytes_raw()
        self.kid = key_id(self.raw)

    def label(self, tag: str = TAG, origin: str = ORIGIN) -> str:
        return sign_label(self.private, self.kid, origin, tag)

    def url(self, tag: str = TAG, origin: str = ORIGIN, base: str = BASE) -> str:
        return format_label_url(base, tag, self.label(tag, origin))


OPERATOR = Key(1)
OTHER = Key(2)
KEYS = {OPERATOR.kid: OPERATOR.raw}

tag_ids = st.from_regex(r"[A-Z0-9][A-Z0-9-]{2,39}", fullmatch=True)
origins = st.text(st.characters(codec="utf-8", exclude_characters="\n"), min_size=1, max_size=60)
hosts = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}", fullmatch=True)
base_paths = st.from_regex(r"(/[a-z0-9._~-]{1,12}){0,3}", fullmatch=True)


def _reason(url: str, keys: dict[str, bytes] = KEYS, origin: str = ORIGIN) -> str:
    with pytest.raises(LabelError) as caught:
        verify_label(parse_label_url(url), origin, keys)
    return caught.value.reason


# --- the message and the round trip ----------------------------------------------------------------


def test_the_signed_message_is_domain_origin_tag() -> None:
    assert label_message(ORIGIN, TAG) == b"tagledger-label/v1\ntagledger.test/log\nKAL-000001"
    assert label_message("ledger.exemple.cd/journal-é", "LOT-01") == \
        "tagledger-label/v1\nledger.exemple.cd/journal-é\nLOT-01".encode()


def test_a_label_url_looks_like_a_digital_link() -> None:
    url = OPERATOR.url()
    assert url.startswith(f"{BASE}/t/{TAG}?s={OPERATOR.kid}.")
    kid, sig = url.split("?s=")[1].split(".")
    assert kid == OPERATOR.kid and len(sig) == 86
    assert OPERATOR.private.public_key().verify(b64url_decode(sig), label_message(ORIGIN, TAG)) is None
    assert len(url) < 160  # a version 7 QR code at level M


@settings(max_examples=150, deadline=None)
@given(tag=tag_ids, origin=origins, host=hosts, path=base_paths, https=st.booleans(),
       port=st.none() | st.integers(1, 65535))
def test_sign_parse_verify_round_trip(tag: str, origin: str, host: str, path: str, https: bool,
                                      port: int | None) -> None:
    base = f"{'https' if https else 'http'}://{host}{'' if port is None else f':{port}'}{path}"
    label = OPERATOR.label(tag, origin)
    url = format_label_url(base + "/", tag, label)
    payload = parse_label_url(url)
    assert payload == LabelPayload(base, tag, OPERATOR.kid, label.split(".")[1])
    assert payload.url == url and payload.label == label
    verify_label(payload, origin, {OTHER.kid: OTHER.raw, **KEYS})
    assert parse_label(tag, label) == LabelPayload("", tag, OPERATOR.kid, payload.sig)


@settings(max_examples=100, deadline=None)
@given(tag=tag_ids, other=tag_ids)
def test_a_label_is_valid_for_its_tag_only(tag: str, other: str) -> None:
    url = OPERATOR.url(tag)
    if other != tag:
        assert _reason(url.replace(f"/t/{tag}?", f"/t/{other}?")) == "bad_signature"


# --- what verification refuses ---------------------------------------------------------------------


def test_an_altered_tag_id_is_exposed() -> None:
    url = OPERATOR.url()
    assert _reason(url.replace("KAL-000001", "KAL-000002")) == "bad_signature"
    assert _reason(url.replace("KAL-000001", "KAL-0000010")) == "bad_signature"


def test_a_label_for_another_ledger_does_not_verify() -> None:
    assert _reason(OPERATOR.url(origin="other.ledger/log")) == "bad_signature"


def test_a_key_that_is_not_the_operators_is_unknown() -> None:
    error = _reason(OTHER.url())
    assert error == "unknown_key"
    with pytest.raises(LabelError, match="not a key of the ledger's operator"):
        verify_label(parse_label_url(OTHER.url()), ORIGIN, KEYS)


def test_a_signature_by_another_key_under_the_operators_kid_is_bad() -> None:
    forged_sig = b64url_encode(OTHER.private.sign(label_message(ORIGIN, TAG)))
    assert _reason(f"{BASE}/t/{TAG}?s={OPERATOR.kid}.{forged_sig}") == "bad_signature"


def test_no_key_at_all() -> None:
    assert _reason(OPERATOR.url(), keys={}) == "unknown_key"


def test_a_key_given_under_another_kid_is_refused() -> None:
    with pytest.raises(LabelError) as caught:
        verify_label(parse_label_url(OPERATOR.url()), ORIGIN, {OPERATOR.kid: OTHER.raw})
    assert caught.value.reason == "malformed"


def test_sign_label_refuses_a_kid_that_is_not_its_key() -> None:
    with pytest.raises(LabelError):
        sign_label(OPERATOR.private, OTHER.kid, ORIGIN, TAG)
    with pytest.raises(LabelError):
        sign_label(OPERATOR.private, OPERATOR.kid, ORIGIN, "kal-000001")
    with pytest.raises(LabelError):
        sign_label(OPERATOR.private, OPERATOR.kid, "two\nlines", TAG)
    with pytest.raises(LabelError):
        sign_label(OPERATOR.private, OPERATOR.kid, "", TAG)


# --- what parsing refuses --------------------------------------------------------------------------

GOOD = OPERATOR.url()
LABEL = GOOD.split("?s=")[1]
SIG = LABEL.split(".")[1]


def _flip_last_unused_bits(sig: str) -> str:
    """The same 64 bytes, non-canonically: the last character's unused low bits set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return sig[:-1] + alphabet[alphabet.index(sig[-1]) | 0b11]


@pytest.mark.parametrize("url", [
    # truncated or padded signatures, wrong kid
    GOOD[:-1],
    GOOD[:-10],
    GOOD + "A",
    GOOD + "==",
    GOOD.replace(f"s={OPERATOR.kid}", f"s={OPERATOR.kid[:-1]}"),
    GOOD.replace(f"s={OPERATOR.kid}", f"s={OPERATOR.kid.upper()}"),
    GOOD.replace(f"{OPERATOR.kid}.", f"{OPERATOR.kid}-"),
    f"{BASE}/t/{TAG}?s={OPERATOR.kid}.{_flip_last_unused_bits(SIG)}",
    f"{BASE}/t/{TAG}?s={OPERATOR.kid}.{SIG.replace(SIG[0], '+', 1)}",
    # extra, missing or repeated parameters
    GOOD + "&x=1",
    GOOD + "&s=" + LABEL,
    f"{BASE}/t/{TAG}?x=1&s={LABEL}",
    f"{BASE}/t/{TAG}?S={LABEL}",
    f"{BASE}/t/{TAG}?s=",
    f"{BASE}/t/{TAG}",
    f"{BASE}/t/{TAG}?",
    f"{BASE}/t/{TAG}?s={LABEL}&",
    f"{BASE}/t/{TAG}?s={LABEL}#frag",
    f"{BASE}/t/{TAG}?s={LABEL}?",
    # wrong paths
    f"{BASE}/tag/{TAG}?s={LABEL}",
    f"{BASE}/T/{TAG}?s={LABEL}",
    f"{BASE}/t/{TAG}/?s={LABEL}",
    f"{BASE}/t/kal-000001?s={LABEL}",
    f"{BASE}/t/%4BAL-000001?s={LABEL}",
    f"{BASE}/t/KA?s={LABEL}",
    f"{BASE}/t/-AL-000001?s={LABEL}",
    f"{BASE}//t/{TAG}?s={LABEL}",
    f"{BASE}/t/{TAG}/extra?s={LABEL}",
    f"{BASE}/v1/tags/{TAG}?s={LABEL}",
    f"{BASE}?s={LABEL}",
    # wrong scheme, host, characters
    f"ftp://ledger.example.org/t/{TAG}?s={LABEL}",
    f"HTTPS://ledger.example.org/t/{TAG}?s={LABEL}",
    f"https:/ledger.example.org/t/{TAG}?s={LABEL}",
    f"https:///t/{TAG}?s={LABEL}",
    f"https://user@ledger.example.org/t/{TAG}?s={LABEL}",
    f"https://ledger.example.org:port/t/{TAG}?s={LABEL}",
    f"https://ledger.example.org\\@evil.example/t/{TAG}?s={LABEL}",
    f" {GOOD}",
    f"{GOOD}\n",
    GOOD.replace("ledger", "lédger"),
    "",
    "https://" + "a" * 2048 + f"/t/{TAG}?s={LABEL}",
])
def test_parse_refuses(url: str) -> None:
    with pytest.raises(LabelError) as caught:
        parse_label_url(url)
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize("value", [None, 42, b"https://x/t/KAL-000001"])
def test_parse_refuses_non_strings(value: object) -> None:
    with pytest.raises(LabelError):
        parse_label_url(value)  # type: ignore[arg-type]


def test_the_base_url_is_not_signed_but_returned() -> None:
    moved = GOOD.replace(BASE, "http://10.0.0.7:8000/tagledger")
    payload = parse_label_url(moved)
    assert payload.base_url == "http://10.0.0.7:8000/tagledger"
    verify_label(payload, ORIGIN, KEYS)  # the app compares base_url with the ledger it trusts


def test_format_refuses_a_base_url_with_a_query_or_fragment() -> None:
    for base in ("https://ledger.example.org/?x=1", "https://ledger.example.org/#x", "ledger.example.org",
                 "https://user@ledger.example.org"):
        with pytest.raises(LabelError):
            format_label_url(base, TAG, LABEL)


def test_the_protocol_test_vector() -> None:
    """docs/protocol.md section 13.7: private key bytes 00 01 02 ... 1f, origin tagledger.local/log."""
    private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    raw = private.public_key().public_bytes_raw()
    assert (b64url_encode(raw), key_id(raw)) == ("A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg", "56475aa75463474c")
    assert label_message("tagledger.local/log", TAG).hex() == (
        "7461676c65646765722d6c6162656c2f76310a7461676c65646765722e6c6f63616c2f6c6f670a4b414c2d303030303031")
    url = ("https://ledger.example.org/t/KAL-000001?s=56475aa75463474c.nYYO-ujP95J_sFBi1Nl3VpDkd0nxIPWc14CM233sP5ZSZq7"
           "--gSFomErDjACp1YjfiYQx3ciCbTfWJHy7ujSCg")
    assert format_label_url(BASE, TAG, sign_label(private, "56475aa75463474c", "tagledger.local/log", TAG)) == url
    verify_label(parse_label_url(url), "tagledger.local/log", {"56475aa75463474c": raw})
