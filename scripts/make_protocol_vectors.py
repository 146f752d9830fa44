"""Write tests/data/protocol-vectors.json: the shared test vectors of the protocol's formats (docs/protocol.md
sections 1, 2, 4 and 13), computed by the reference implementation (verification/).

The phone app's JavaScript (api/static/app/js/protocol.js) must give the same bytes, hashes, signatures and
verdicts: tests/browser/test_app_protocol.py runs every vector in Chromium, tests/unit/test_protocol_vectors.py
checks the file against verification/ (so it cannot drift from the reference).

    .venv/bin/python scripts/make_protocol_vectors.py
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from verification.canonical import NonCanonicalValue, jcs
from verification.encoding import b64url_encode, key_id, sha256_hex
from verification.envelope import Envelope, envelope_hash, sign_body
from verification.label import LabelError, parse_label_url, sign_label

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "protocol-vectors.json"
SEED = bytes(range(32))
ORIGIN = "tagledger.local/log"

CANONICAL = {
    "scalars": '[null, true, false, 0, -0, 1, -1, 9007199254740991, -9007199254740991, ""]',
    "empty containers": '{"a": {}, "b": [], "c": [[]], "d": [{}]}',
    "key order is by UTF-16 code units": '{"\\ue000": 1, "\\ud83d\\ude00": 2, "a": 3, "A": 4, "\\u00e9": 5, "": 6, '
                                         '"aa": 7, "a\\u0000": 8}',
    "string escapes": '"\\u0000\\u0001\\u001f \\b\\f\\n\\r\\t \\" \\\\ / \\u007f \\u0080 \\u2028\\u2029 \\u00e9 '
                      '\\ud83d\\ude00 \\ufeff"',
    "nested values": '{"z": [1, {"y": "x", "b": [true, null]}], "a": {"c": -5, "b": "\\u00e9t\\u00e9"}}',
    "an event body": '{"v": 1, "id": "6d1f6c2e-2b55-4d2a-9a57-2bb5f3a4f0a1", "type": "tag_attached", '
                     '"stream": "tag:KAL-000001", "prev": "' + "ab" * 32 + '", "actor": "kal-site", '
                     '"key": "56475aa75463474c", "time": "2026-11-23T08:15:00.000Z", "data": {"site": "kal-site", '
                     '"mineral": "tin", "mass_g": 49800, "pit": "Puits n\\u00b0 7 \\u2014 \\u00ab nord \\u00bb", '
                     '"gps": {"lat": "-2.1234567", "lon": "28.7654321"}}}',
}
REJECTED = {
    "a fraction": "1.5",
    "an exponent that is a fraction": "1e-3",
    "above 2^53-1": "9007199254740992",
    "below -(2^53-1)": "-9007199254740992",
    "a lone high surrogate": '"a\\ud800b"',
    "a lone low surrogate in a name": '{"\\udc00": 1}',
    "a lone surrogate deep inside": '{"a": [1, {"b": "\\ud83d"}]}',
}
LABEL_URLS = {
    "the section 13.7 URL": None,  # filled below
    "another base path": "https://ledger.example.org/x/y/t/KAL-000001?s=",
    "a port": "http://127.0.0.1:8000/t/KAL-000001?s=",
    "lowercase tag": "https://ledger.example.org/t/kal-000001?s=",
    "a fragment": "https://ledger.example.org/t/KAL-000001#x?s=",
    "two parameters": "https://ledger.example.org/t/KAL-000001?a=1&s=",
    "user info": "https://me@ledger.example.org/t/KAL-000001?s=",
    "an empty segment": "https://ledger.example.org//t/KAL-000001?s=",
    "ftp": "ftp://ledger.example.org/t/KAL-000001?s=",
    "a bad port": "https://ledger.example.org:99999/t/KAL-000001?s=",
    "a space": "https://ledger.example.org/t/KAL 000001?s=",
    "no query": "https://ledger.example.org/t/KAL-000001",
}


def main() -> None:
    private = Ed25519PrivateKey.from_private_bytes(SEED)
    public = private.public_key().public_bytes_raw()
    kid = key_id(public)
    canonical = [{"name": name, "json": text, "canonical": jcs(json.loads(text)).decode("utf-8")}
                 for name, text in CANONICAL.items()]
    for name, text in REJECTED.items():
        try:
            jcs(json.loads(text))
        except NonCanonicalValue:
            continue
        raise AssertionError(f"{name} was accepted")
    body = json.loads(CANONICAL["an event body"])
    envelope = sign_body(private, body)
    label = sign_label(private, kid, ORIGIN, "KAL-000001")
    urls = []
    for name, prefix in LABEL_URLS.items():
        url = (f"https://ledger.example.org/t/KAL-000001?s={label}" if prefix is None
               else prefix + label if prefix.endswith("?s=") else prefix)
        try:
            parsed = parse_label_url(url)
            urls.append({"name": name, "url": url, "valid": True, "base_url": parsed.base_url, "tag": parsed.tag_id})
        except LabelError:
            urls.append({"name": name, "url": url, "valid": False})
    vectors = {
        "about": "Computed by verification/ (scripts/make_protocol_vectors.py); docs/protocol.md sections 1, 2, 4, 13.",
        "canonical": canonical,
        "rejected": [{"name": name, "json": text} for name, text in REJECTED.items()],
        "key": {"seed_hex": SEED.hex(), "public_key": b64url_encode(public), "kid": kid},
        "envelope": {"body": body, "sig": envelope.sig, "hash": envelope_hash(envelope),
                     "signing_bytes_sha256": sha256_hex(jcs(body))},
        "label": {"origin": ORIGIN, "tag": "KAL-000001", "label": label, "urls": urls},
        "base64url": [{"hex": h, "text": b64url_encode(bytes.fromhex(h))} for h in ("", "00", "ff", "0000", "ffff",
                                                                                      "000000", "fbff", "fbffbf")],
        "base64url_rejected": ["A", "AB=", "AB+", "AB/", "AB ", "AR", "AAB", "_x", "__9"],
    }
    assert Envelope.from_json({"body": body, "sig": envelope.sig}).body == body
    OUT.write_text(json.dumps(vectors, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
