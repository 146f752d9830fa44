"""ledger.fast_signatures: libsodium's accept path gives the protocol's verdict, and switches itself off otherwise.

- every published edge-case vector gets the file's verdict from the fast verifier (and libsodium alone accepts
  none the protocol refuses: the self-test's first condition, on the PyNaCl installed);
- random keys and messages, valid signatures and mutated ones (a bit of R, S, A or the message flipped; S + L):
  the fast verdict is ``cryptography``'s;
- a libsodium that accepts "R + small-order point" (what libsodium's ``master`` would do), injected into a
  FastVerifier, fails the self-test: the verifier is OpenSSL alone and one warning line says why;
- ``TAGLEDGER_ED25519=openssl`` and a missing PyNaCl give OpenSSL alone (in a fresh interpreter each);
- the replay's signature checker is injectable by dotted path, in worker processes too.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import fast_signatures
from ledger.fast_signatures import ENGINE_FAST, ENGINE_OPENSSL, FastVerifier, edge_case_vectors, libsodium_open
from verification.encoding import b64url_encode
from verification.entry_checks import SignatureChecker, signature_checker
from verification.envelope import Envelope, verify_signature

REPO = Path(__file__).resolve().parents[2]
VECTORS = edge_case_vectors()
L = 2**252 + 27742317777372353535851937790883648493
LIBSODIUM = libsodium_open()
assert LIBSODIUM is not None, "PyNaCl is a dependency (pyproject.toml)"


_openssl = SignatureChecker().verify
"""OpenSSL alone through ``cryptography``: the reference the fast path must agree with."""


def test_the_vectors_are_read_from_the_installed_package() -> None:
    published = json.loads((REPO / "verification" / "vectors" / "ed25519-edge-cases.json").read_text())["vectors"]
    assert [name for name, *_ in VECTORS] == [v["name"] for v in published]
    assert len(VECTORS) == 24 and {accepted for *_, accepted in VECTORS} == {True, False}


def test_this_process_uses_the_fast_path() -> None:
    """The installed PyNaCl passes the self-test (if it stops passing, this says so before any figure does)."""
    if os.environ.get(fast_signatures.ENVIRONMENT, "").lower() == "openssl":
        pytest.skip("TAGLEDGER_ED25519=openssl in this environment")
    assert fast_signatures.engine() == ENGINE_FAST and fast_signatures.default().why_off is None


@pytest.mark.parametrize("vector", VECTORS, ids=[name for name, *_ in VECTORS])
def test_the_fast_verifier_gives_the_files_verdict(vector: tuple[str, bytes, bytes, bytes, bool]) -> None:
    name, public_key, signature, message, accepted = vector
    assert fast_signatures.verify(public_key, signature, message) is accepted
    assert fast_signatures.verify(public_key, signature, memoryview(message)) is accepted  # as the replay passes it
    assert FastVerifier(LIBSODIUM).verify(public_key, signature, message) is accepted
    assert not (LIBSODIUM(public_key, signature, message) and not accepted), "libsodium accepts what the rule refuses"


@pytest.mark.parametrize("vector", VECTORS, ids=[name for name, *_ in VECTORS])
def test_the_envelope_check_of_the_write_path_gives_the_references_verdict(
    vector: tuple[str, bytes, bytes, bytes, bool],
) -> None:
    _, public_key, signature, message, accepted = vector
    envelope = Envelope(body=json.loads(message), sig=b64url_encode(signature))
    assert fast_signatures.verify_envelope(public_key, envelope) is accepted is verify_signature(public_key, envelope)


def test_the_envelope_check_refuses_an_undecodable_signature_and_a_short_key_as_the_reference_does() -> None:
    _, public_key, signature, message, _ = VECTORS[0]
    envelope = Envelope(body=json.loads(message), sig=b64url_encode(signature)[:-2])
    assert fast_signatures.verify_envelope(public_key, envelope) is False is verify_signature(public_key, envelope)
    with pytest.raises(ValueError):
        fast_signatures.verify_envelope(public_key[:31], Envelope(body=json.loads(message), sig=b64url_encode(signature)))


def test_libsodium_is_not_asked_about_a_signature_of_another_length() -> None:
    """crypto_sign_open reads the signature from the front of signature || message: a 63-byte signature and a message
    whose first byte completes a valid one would open. The combination refuses it, as OpenSSL does."""
    _, public_key, signature, message, _ = VECTORS[0]
    assert LIBSODIUM(public_key, signature[:63], signature[63:] + message)  # libsodium alone: fooled
    assert fast_signatures.verify(public_key, signature[:63], signature[63:] + message) is False


@settings(max_examples=150, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=200),
       mutation=st.one_of(st.none(), st.just("S + L"),
                          st.tuples(st.sampled_from(["R", "S", "A", "message"]), st.integers(0, 8 * 32 - 1))))
def test_the_fast_verdict_is_cryptographys_on_random_and_mutated_signatures(
    seed: bytes, message: bytes, mutation: Any
) -> None:
    private_key = Ed25519PrivateKey.from_private_bytes(seed)
    public_key = private_key.public_key().public_bytes_raw()
    signature = private_key.sign(message)
    if mutation == "S + L":
        s = int.from_bytes(signature[32:], "little") + L
        signature = signature[:32] + s.to_bytes(32, "little")  # S + L < 2^256 always
    elif mutation is not None:
        part, bit = mutation
        fields = {"R": bytearray(signature[:32]), "S": bytearray(signature[32:]), "A": bytearray(public_key),
                  "message": bytearray(message or b"\x00")}
        fields[part][(bit // 8) % len(fields[part])] ^= 1 << (bit % 8)
        signature, public_key = bytes(fields["R"] + fields["S"]), bytes(fields["A"])
        message = bytes(fields["message"]) if part == "message" else message
    assert fast_signatures.verify(public_key, signature, message) is _openssl(public_key, signature, message)
    if mutation is None:
        assert fast_signatures.verify(public_key, signature, message)


def _master_libsodium(public_key: bytes, signature: bytes, message: Any) -> bool:
    """A libsodium with a cofactored check: the real one, and also "R + small-order point" (what the edge-case file
    names so) -- as libsodium's master branch would accept them."""
    assert LIBSODIUM is not None
    if bytes(message) == _R_PLUS_T[3] and signature == _R_PLUS_T[2] and public_key == _R_PLUS_T[1]:
        return True
    return LIBSODIUM(public_key, signature, message)


_R_PLUS_T = next(v for v in VECTORS if v[0].startswith("R + small-order point"))


def test_a_libsodium_that_accepts_r_plus_a_small_order_point_is_switched_off(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tagledger.signatures"):
        verifier = FastVerifier(_master_libsodium)
    assert verifier.engine == ENGINE_OPENSSL
    assert verifier.why_off is not None and repr(_R_PLUS_T[0]) in verifier.why_off
    assert [r.getMessage() for r in caplog.records] == [
        f"Ed25519: libsodium's fast path is off, OpenSSL alone verifies: {verifier.why_off}"]
    _, public_key, signature, message, accepted = _R_PLUS_T
    assert not accepted and verifier.verify(public_key, signature, message) is False  # OpenSSL alone decides
    for _, public_key, signature, message, accepted in VECTORS:
        assert verifier.verify(public_key, signature, message) is accepted


def test_a_libsodium_that_refuses_everything_is_switched_off() -> None:
    verifier = FastVerifier(lambda *_: False)
    assert verifier.engine == ENGINE_OPENSSL and verifier.why_off == "libsodium refuses an ordinary valid signature"


def test_the_real_libsodium_passes_the_self_test_on_the_same_vectors() -> None:
    """The same injection path as above with the real library: on, so the test above fails for its fake only."""
    verifier = FastVerifier(LIBSODIUM, VECTORS)
    assert verifier.engine == ENGINE_FAST and verifier.why_off is None


_PROBE = ("import logging, sys; logging.basicConfig(level=logging.WARNING, format='%(message)s'); {before}"
          "from ledger import fast_signatures as f; "
          "print(f.engine()); print(f.default().why_off)")


def _probe(env: dict[str, str], before: str = "") -> tuple[list[str], str]:
    clean = {k: v for k, v in os.environ.items() if k != fast_signatures.ENVIRONMENT}
    done = subprocess.run([sys.executable, "-c", _PROBE.format(before=before)], cwd=REPO, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines(), done.stderr


def test_the_environment_switch_turns_the_fast_path_off() -> None:
    assert _probe({fast_signatures.ENVIRONMENT: "openssl"})[0] == [ENGINE_OPENSSL, "TAGLEDGER_ED25519=openssl"]
    assert _probe({fast_signatures.ENVIRONMENT: "OpenSSL "})[0][0] == ENGINE_OPENSSL
    assert _probe({})[0] == [ENGINE_FAST, "None"]
    assert _probe({fast_signatures.ENVIRONMENT: "libsodium"})[0][0] == ENGINE_FAST


def test_without_pynacl_openssl_alone_verifies_with_one_warning() -> None:
    lines, stderr = _probe({}, before="sys.modules['nacl'] = None; sys.modules['nacl.bindings'] = None; ")
    assert lines == [ENGINE_OPENSSL, "PyNaCl is not importable"]
    assert stderr.splitlines() == ["Ed25519: PyNaCl is not importable; OpenSSL alone verifies"]


# --- the replay's signature checker, by dotted path --------------------------------------------------------


class RefusingChecker:
    """A checker that refuses every signature: a replay given it fails at the first entry."""

    engine = "refuses everything"

    def verify(self, public_key: bytes, signature: bytes, message: Any) -> bool:
        return False


def test_the_checker_factory_is_resolved_by_dotted_path() -> None:
    assert type(signature_checker()) is SignatureChecker and signature_checker().engine == "openssl"
    assert signature_checker("tests.unit.test_fast_signatures:RefusingChecker").engine == RefusingChecker.engine
    fast = signature_checker("ledger.fast_signatures:SignatureChecker")
    assert fast.engine == fast_signatures.engine()
    for _, public_key, signature, message, accepted in VECTORS:
        assert fast.verify(public_key, signature, message) is accepted
    with pytest.raises(ValueError):
        signature_checker("ledger.fast_signatures.SignatureChecker")


def test_verification_does_not_import_the_fast_path() -> None:
    code = ("import sys, verification.audit, verification.parallel, verification.replay; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('nacl', 'ledger')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def _log_entries() -> list[bytes]:
    from tests.unit.test_replay import Log

    log = Log()
    for tag in ("BAG-1", "BAG-2"):
        log.attach(tag)
    return log.entries


@pytest.mark.parametrize("workers", [0, 1])
def test_the_replay_and_its_spawned_workers_use_the_checker_they_are_named(workers: int) -> None:
    """Workers import the factory themselves (spawn: nothing inherited): with a checker that refuses everything, the
    replay fails at the first entry; with the fast one, it gives the reference's result."""
    from verification.parallel import replay_entries
    from verification.replay_errors import ReplayError

    entries = _log_entries()
    reference = replay_entries(entries, workers=workers, id_key=b"k" * 16, chunk_size=3)
    fast = replay_entries(entries, workers=workers, id_key=b"k" * 16, chunk_size=3,
                          signature_checker="ledger.fast_signatures:SignatureChecker")
    assert fast.replayer.signature_engine == fast_signatures.engine() and reference.replayer.signature_engine == "openssl"
    assert (fast.size, fast.digest, fast.root) == (reference.size, reference.digest, reference.root) == \
        (len(entries), reference.digest, reference.root)
    with pytest.raises(ReplayError) as refused:
        replay_entries(entries, workers=workers, chunk_size=3,
                       signature_checker="tests.unit.test_fast_signatures:RefusingChecker")
    assert (refused.value.seq, refused.value.rule) == (0, "signature.invalid")  # the genesis is signed too
