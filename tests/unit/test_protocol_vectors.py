"""The shared test vectors (tests/data/protocol-vectors.json) agree with the reference implementation.

The phone app's JavaScript runs the same vectors in Chromium (tests/browser/test_app_protocol.py); this test keeps
the file honest: every value in it is recomputed here with verification/ alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from verification.canonical import NonCanonicalValue, jcs
from verification.encoding import EncodingError, b64url_decode, b64url_encode, key_id, sha256_hex
from verification.envelope import Envelope, envelope_hash, verify_signature
from verification.label import LabelError, parse_label_url, verify_label

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "protocol-vectors.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", VECTORS["canonical"], ids=lambda c: c["name"])
def test_canonical_vectors(case: dict) -> None:
    assert jcs(json.loads(case["json"])) == case["canonical"].encode("utf-8")


@pytest.mark.parametrize("case", VECTORS["rejected"], ids=lambda c: c["name"])
def test_rejected_vectors(case: dict) -> None:
    with pytest.raises(NonCanonicalValue):
        jcs(json.loads(case["json"]))


def test_key_envelope_and_label_vectors() -> None:
    key = VECTORS["key"]
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key["seed_hex"]))
    raw = private.public_key().public_bytes_raw()
    assert (b64url_encode(raw), key_id(raw)) == (key["public_key"], key["kid"])
    vector = VECTORS["envelope"]
    envelope = Envelope.from_json({"body": vector["body"], "sig": vector["sig"]})
    assert verify_signature(raw, envelope) and envelope_hash(envelope) == vector["hash"]
    assert sha256_hex(jcs(vector["body"])) == vector["signing_bytes_sha256"]
    assert b64url_encode(private.sign(jcs(vector["body"]))) == vector["sig"]  # Ed25519 is deterministic
    label = VECTORS["label"]
    for case in label["urls"]:
        if not case["valid"]:
            with pytest.raises(LabelError):
                parse_label_url(case["url"])
            continue
        parsed = parse_label_url(case["url"])
        assert (parsed.base_url, parsed.tag_id, parsed.label) == (case["base_url"], case["tag"], label["label"])
        verify_label(parsed, label["origin"], {key["kid"]: raw})


def test_base64url_vectors() -> None:
    for case in VECTORS["base64url"]:
        assert b64url_encode(bytes.fromhex(case["hex"])) == case["text"]
        assert b64url_decode(case["text"]).hex() == case["hex"]
    for text in VECTORS["base64url_rejected"]:
        with pytest.raises(EncodingError):
            b64url_decode(text)
