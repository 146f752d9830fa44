"""Every signature-verifying path gives the protocol's verdict on the Ed25519 edge cases.

verification/vectors/ed25519-edge-cases.json (written by scripts/make_ed25519_edge_cases.py) holds signatures on the
cases where Ed25519 verifiers disagree: S >= L, small-order and mixed-order points, non-canonical encodings,
R offset by a small-order point. Each vector's verdict is checked three ways:

- against the rule written out in plain Python (verification.ed25519_reference.accepts), which asks no
  library: so this file fails if OpenSSL (through ``cryptography``) ever changes what it accepts;
- against ``cryptography`` directly;
- through each verifying path of verification/ and api/: ``envelope.verify_signature`` (also the ledger's
  write path), ``entry_checks.SignatureChecker`` (the audit's replay), ``note.NoteVerifier`` (checkpoints),
  ``label.verify_label`` and ``api.read_auth.authenticate``. The last two sign fixed messages, so the same
  cases are built again over their messages by the script's ``edge_cases``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from api.read_auth import Unauthenticated, authenticate
from domain.registry import KeyRecord, OrgRecord, Registry, StreamHead
from domain.roles import Role
from ledger.client.read_auth import SCHEME, read_message
from verification.ed25519_reference import accepts
from verification.encoding import b64url_encode, key_id
from verification.entry_checks import SignatureChecker
from verification.envelope import Envelope, verify_signature
from verification.label import LabelError, LabelPayload, label_message, verify_label
from verification.note import NoteVerifier

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "verification" / "vectors" / "ed25519-edge-cases.json"
VECTORS = json.loads(DATA.read_text(encoding="utf-8"))["vectors"]
NOW = datetime(2026, 11, 23, 8, 15, tzinfo=UTC)
ORIGIN = "tagledger.local/log"


def _load_script() -> ModuleType:
    path = REPO / "scripts" / "make_ed25519_edge_cases.py"
    spec = importlib.util.spec_from_file_location("make_ed25519_edge_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


SCRIPT = _load_script()


def _fields(vector: dict[str, str]) -> tuple[bytes, bytes, bytes, bool]:
    return (bytes.fromhex(vector["public_key"]), bytes.fromhex(vector["signature"]),
            bytes.fromhex(vector["message"]), vector["verdict"] == "accept")


def _openssl(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


each_vector = pytest.mark.parametrize("vector", VECTORS, ids=[vector["name"] for vector in VECTORS])


def test_the_file_is_what_the_script_writes() -> None:
    assert DATA.read_text(encoding="utf-8") == SCRIPT.document(SCRIPT.edge_cases())


def test_the_file_has_both_verdicts_on_each_kind_of_edge_case() -> None:
    verdicts: dict[str, set[str]] = {}
    for vector in VECTORS:
        for kind in ("small-order", "order 8", "y = p", "sign bit", "mixed-order", "S + L", "R + "):
            if kind in vector["name"]:
                verdicts.setdefault(kind, set()).add(vector["verdict"])
    assert verdicts["order 8"] == {"accept", "reject"}
    assert verdicts["mixed-order"] == {"accept", "reject"}
    assert verdicts["y = p"] == {"accept", "reject"}  # a key read modulo p; an R compared as bytes
    assert verdicts["sign bit"] == {"accept", "reject"}
    assert verdicts["S + L"] == {"reject"}
    assert len([v for v in VECTORS if v["name"].startswith("R + small-order point")]) == 7  # every T but 0


def test_the_valid_vector_is_the_standard_signature() -> None:
    """The construction signs as RFC 8032 does: its baseline is OpenSSL's own signature, byte for byte."""
    valid = next(vector for vector in VECTORS if vector["name"] == "valid")
    private_key = Ed25519PrivateKey.from_private_bytes(SCRIPT.SEED)
    assert private_key.public_key().public_bytes_raw().hex() == valid["public_key"]
    assert private_key.sign(bytes.fromhex(valid["message"])).hex() == valid["signature"]


@each_vector
def test_the_rule_in_plain_python_gives_the_verdict(vector: dict[str, str]) -> None:
    public_key, signature, message, accepted = _fields(vector)
    assert accepts(public_key, signature, message) is accepted


@each_vector
def test_openssl_gives_the_verdict(vector: dict[str, str]) -> None:
    public_key, signature, message, accepted = _fields(vector)
    assert _openssl(public_key, signature, message) is accepted


@each_vector
def test_the_replay_signature_checker_gives_the_verdict(vector: dict[str, str]) -> None:
    public_key, signature, message, accepted = _fields(vector)
    checker = SignatureChecker()
    assert checker.verify(public_key, signature, message) is accepted
    assert checker.verify(public_key, signature, message) is accepted  # again, with the key object cached


@each_vector
def test_envelope_verify_signature_gives_the_verdict(vector: dict[str, str]) -> None:
    """The ledger's write path and the verifier's envelope check (the messages are canonical JSON objects)."""
    public_key, signature, message, accepted = _fields(vector)
    envelope = Envelope(body=json.loads(message), sig=b64url_encode(signature))
    assert envelope.signed_bytes() == message
    assert verify_signature(public_key, envelope) is accepted


@each_vector
def test_the_checkpoint_note_verifier_gives_the_verdict(vector: dict[str, str]) -> None:
    public_key, signature, message, accepted = _fields(vector)
    assert NoteVerifier.for_public_key("tagledger.local/log", public_key).verify(message, signature) is accepted


def test_labels_give_the_verdict_on_every_edge_case() -> None:
    tag_id = "KAL-000001"
    cases = SCRIPT.edge_cases(label_message(ORIGIN, tag_id))
    assert len(cases) == len(VECTORS)
    for case in cases:
        kid = key_id(case.public_key)
        payload = LabelPayload("https://ledger.example.org", tag_id, kid, b64url_encode(case.signature))
        try:
            verify_label(payload, ORIGIN, {kid: case.public_key})
            verdict = True
        except LabelError as error:
            assert error.reason == "bad_signature", case.name
            verdict = False
        assert verdict is case.accepted, case.name


def _registry(org: str, public_key: bytes) -> Registry:
    kid = key_id(public_key)
    head = StreamHead("00" * 32, 1, NOW)
    return Registry(
        orgs={org: OrgRecord(org, "Edge", Role.AUDITOR, "CD", 1, head, [kid])},
        keys={kid: KeyRecord(kid, org, b64url_encode(public_key), datetime(2026, 1, 1, tzinfo=UTC), 1)},
    )


def _request(path: str, authorization: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
                    "headers": [(b"authorization", authorization.encode())]})


def test_signed_reads_give_the_verdict_on_every_edge_case() -> None:
    org, path, time = "edge-auditor", "/v1/orgs", "2026-11-23T08:15:00Z"
    cases = SCRIPT.edge_cases(read_message("GET", path, time))
    assert len(cases) == len(VECTORS)
    for case in cases:
        header = (f'{SCHEME} org="{org}", key="{key_id(case.public_key)}", time="{time}", '
                  f'sig="{b64url_encode(case.signature)}"')
        try:
            verdict = authenticate(_request(path, header), _registry(org, case.public_key), NOW) is not None
        except Unauthenticated as error:
            assert "does not verify" in error.detail, case.name
            verdict = False
        assert verdict is case.accepted, case.name


@settings(max_examples=40, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=64),
       flip=st.one_of(st.none(), st.integers(min_value=0, max_value=64 * 8 + 32 * 8 - 1)))
def test_the_rule_in_plain_python_agrees_with_openssl_on_ordinary_signatures(
    seed: bytes, message: bytes, flip: int | None
) -> None:
    """Valid signatures, and the same with one bit flipped in the signature or in the public key."""
    private_key = Ed25519PrivateKey.from_private_bytes(seed)
    public_key = private_key.public_key().public_bytes_raw()
    both = bytearray(private_key.sign(message) + public_key)
    if flip is not None:
        both[flip // 8] ^= 1 << (flip % 8)
    signature, public_key = bytes(both[:64]), bytes(both[64:])
    assert accepts(public_key, signature, message) is _openssl(public_key, signature, message)
    if flip is None:
        assert accepts(public_key, signature, message)


def test_the_library_bench_prints_cryptographys_verdicts_without_pynacl() -> None:
    """bench/ed25519_libraries.py without PyNaCl (not a dependency): one column, one line saying so, exit 0."""
    run = ("import runpy, sys; sys.modules['nacl'] = None; "
           "sys.argv = ['ed25519_libraries.py', '--rounds', '1', '--seconds', '0.01']; "
           "runpy.run_path('bench/ed25519_libraries.py', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", run], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows[0] == "| vector | protocol | cryptography |"
    assert len(rows) == 1 + len(VECTORS) and "differs" not in done.stdout
    assert "PyNaCl is not installed" in done.stdout
    assert "cryptography: accepts 0 vector(s) the protocol refuses, refuses 0 it accepts" in done.stdout
