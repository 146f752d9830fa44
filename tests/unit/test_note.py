"""verification.note (c2sp.org/signed-note) and verification.checkpoint (c2sp.org/tlog-checkpoint).

The examples are the specifications' own and those of golang.org/x/mod/sumdb/note (note.go and
note_test.go), byte for byte.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from verification.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from verification.note import (
    MAX_SIGNATURES,
    UNICODE_SPACES,
    NoteError,
    NoteSignature,
    NoteVerifier,
    add_signature,
    b64std_decode,
    check_key_name,
    encode_skey,
    encode_vkey,
    is_valid_key_name,
    note_key_id,
    open_note,
    parse_skey,
    parse_vkey,
    sign_note,
)

# --- golang.org/x/mod/sumdb/note examples -------------------------------------------------------

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb"
    "6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33W"
    "Wd1RvMc+QQ=\n"
)
GO_NOTE = GO_TEXT + "\n" + PETER_SIG

# --- C2SP examples ------------------------------------------------------------------------------

C2SP_NOTE = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed è subito sera.\n"
    "\n"
    "— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU"
    "0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)
C2SP_CHECKPOINT = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q"
    "1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)

# --- our own keys -------------------------------------------------------------------------------

LOG_NAME = "tagledger.example/log"
LOG_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
LOG_VERIFIER = NoteVerifier.for_public_key(LOG_NAME, LOG_KEY.public_key().public_bytes_raw())
ROOT = bytes.fromhex("9f2c4e6a8b0d1f3e5a7c9e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f1a3c5e7b9d1f")


def peter() -> NoteVerifier:
    return parse_vkey(PETER_VKEY)


def enoch() -> NoteVerifier:
    return parse_vkey(ENOCH_VKEY)


# ================================================================================================
# The examples of the specifications and of Go
# ================================================================================================


def test_go_vkey_parses_and_encodes_back() -> None:
    verifier = peter()
    assert verifier.name == "PeterNeumann"
    assert verifier.key_id == bytes.fromhex("c74f20a3")
    assert len(verifier.public_key_raw) == 32
    assert verifier.vkey() == PETER_VKEY
    assert encode_vkey(verifier.name, verifier.public_key_raw) == PETER_VKEY
    assert note_key_id("PeterNeumann", verifier.public_key_raw) == bytes.fromhex("c74f20a3")
    assert enoch().key_id == bytes.fromhex("af0cfe78")


def test_go_example_note_verifies_byte_for_byte() -> None:
    for note in (GO_NOTE, GO_NOTE.encode("utf-8")):
        opened = open_note(note, [peter()])
        assert opened.text == GO_TEXT
        assert opened.verified_by == ("PeterNeumann",)
        assert [sig.line() for sig in opened.signatures] == [PETER_SIG]
        assert opened.signatures[0].key_id == bytes.fromhex("c74f20a3")


def test_sign_note_reproduces_the_go_example_from_its_skey() -> None:
    name, private_key = parse_skey(PETER_SKEY)
    assert name == "PeterNeumann"
    assert private_key.public_key().public_bytes_raw() == peter().public_key_raw
    assert encode_skey(name, private_key) == PETER_SKEY
    assert sign_note(GO_TEXT, name, private_key) == GO_NOTE


def test_go_doubly_signed_note() -> None:
    note = GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    only_peter = open_note(note, [peter()])
    assert only_peter.verified_by == ("PeterNeumann",)
    assert [sig.name for sig in only_peter.signatures] == ["PeterNeumann", "EnochRoot"]
    both = open_note(note, [peter(), enoch()])
    assert both.verified_by == ("PeterNeumann", "EnochRoot")
    assert open_note(note, [enoch()]).verified_by == ("EnochRoot",)
    with pytest.raises(NoteError, match="not signed by any known key") as error:
        open_note(note, [])
    assert "PeterNeumann+c74f20a3" in str(error.value)
    assert "EnochRoot+af0cfe78" in str(error.value)


def test_go_vkey_manglings_are_refused() -> None:
    """Go's TestNewVerifier: every proper substring and every one-byte change is refused."""
    for i in range(len(PETER_VKEY) + 1):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(NoteError):
                    parse_vkey(PETER_VKEY[i:j])
    for i in range(len(PETER_VKEY)):
        changed = PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :]
        with pytest.raises(NoteError):
            parse_vkey(changed)
    # Wrong key length and unknown algorithm, each with a key ID adjusted to match.
    with pytest.raises(NoteError):
        parse_vkey(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        )
    with pytest.raises(NoteError, match="signature type 0x65 is not Ed25519"):
        parse_vkey("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_go_skey_manglings_are_refused() -> None:
    for i in range(len(PETER_SKEY)):
        changed = PETER_SKEY[:i] + chr(ord(PETER_SKEY[i]) + 1) + PETER_SKEY[i + 1 :]
        with pytest.raises(NoteError):
            parse_skey(changed)
    for cut in range(len(PETER_SKEY)):
        with pytest.raises(NoteError):
            parse_skey(PETER_SKEY[:cut])


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT,
        GO_TEXT + "\n",
        GO_TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + GO_TEXT + "\n" + PETER_SIG,
        GO_TEXT + "\n" + "— Bad Name " + PETER_SIG.split(" ")[2],
        GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
    ],
)
def test_go_malformed_notes(note: str) -> None:
    with pytest.raises(NoteError, match="malformed note"):
        open_note(note, [peter()])


def test_go_malformed_note_invalid_utf8() -> None:
    with pytest.raises(NoteError, match="not valid UTF-8"):
        open_note(b"\xff" + GO_NOTE.encode("utf-8"), [peter()])


def test_go_too_many_signatures() -> None:
    assert open_note(GO_TEXT + "\n" + PETER_SIG * MAX_SIGNATURES, [peter()]).verified_by
    for verifiers in ([peter()], []):
        with pytest.raises(NoteError, match="101 signature lines, more than the 100"):
            open_note(GO_TEXT + "\n" + PETER_SIG * 101, verifiers)


def test_the_spec_minimum_of_16_signatures_is_accepted() -> None:
    note = GO_TEXT + "\n" + ENOCH_SIG * 15 + PETER_SIG
    assert open_note(note, [peter()]).verified_by == ("PeterNeumann",)


def test_go_invalid_signature_rejects_the_note() -> None:
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError, match=r"signature by key PeterNeumann\+c74f20a3 does not verify"):
        open_note(GO_TEXT + "\n" + bad, [peter()])
    # ... even when another known key's signature verifies (the spec's SHOULD).
    with pytest.raises(NoteError, match="does not verify"):
        open_note(GO_TEXT + "\n" + ENOCH_SIG + bad, [peter(), enoch()])


def test_go_duplicated_signatures() -> None:
    enoch_abcd = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    note = GO_TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd
    opened = open_note(note, [peter()])
    assert opened.verified_by == ("PeterNeumann",)
    assert len(opened.signatures) == 5
    # Go verifies only the first signature of a key; we verify every one of a known key.
    with pytest.raises(NoteError, match=r"EnochRoot\+af0cfe78 does not verify"):
        open_note(note, [peter(), enoch()])


def test_a_known_name_with_another_key_id_is_ignored() -> None:
    """Signatures matching a known key's name or ID, but not both, are unknown keys."""
    other_public = OTHER_KEY.public_key().public_bytes_raw()
    impostor = NoteVerifier.for_public_key("PeterNeumann", other_public)
    note = sign_note(GO_TEXT, "PeterNeumann", OTHER_KEY)
    with pytest.raises(NoteError, match="not signed by any known key"):
        open_note(note, [peter()])
    assert open_note(note, [peter(), impostor]).verified_by == ("PeterNeumann",)
    assert open_note(note + PETER_SIG, [peter()]).verified_by == ("PeterNeumann",)


def test_c2sp_example_note_parses_and_keeps_its_empty_line() -> None:
    with pytest.raises(NoteError, match=r"not signed by any known key \(signed by: quasimodo"):
        open_note(C2SP_NOTE, [peter()])
    # Co-sign it: the text (with its empty line) is found by the last blank line.
    cosigned = add_signature(C2SP_NOTE, LOG_NAME, LOG_KEY)
    assert cosigned.startswith(C2SP_NOTE)
    opened = open_note(cosigned, [LOG_VERIFIER])
    assert opened.text == (
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\n"
        "ed è subito sera.\n"
    )
    assert [sig.name for sig in opened.signatures] == ["quasimodo.example/salvatore", LOG_NAME]
    assert opened.verified_by == (LOG_NAME,)


def test_c2sp_example_checkpoint() -> None:
    text = C2SP_CHECKPOINT.split("\n\n")[0] + "\n"
    checkpoint = parse_checkpoint(text)
    assert checkpoint == Checkpoint(
        "example.com/behind-the-sofa",
        20852163,
        base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="),
    )
    assert checkpoint.to_text() == text
    # Its key is not published: re-sign under a key of the same name, and the original signature
    # (an unknown key to us) is ignored.
    key = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    verifier = NoteVerifier.for_public_key(checkpoint.origin, key.public_key().public_bytes_raw())
    with pytest.raises(CheckpointError, match="not signed by any known key"):
        open_checkpoint(C2SP_CHECKPOINT, verifier)
    assert open_checkpoint(add_signature(C2SP_CHECKPOINT, checkpoint.origin, key), verifier) == (
        checkpoint
    )


# ================================================================================================
# Keys and key names
# ================================================================================================


@pytest.mark.parametrize(
    "name", ["", "a b", "a+b", "a\tb", "a\nb", "a\u00a0b", "a\u3000b", "a\u2028", "a\x01", "\ud800"]
)
def test_invalid_key_names(name: str) -> None:
    assert not is_valid_key_name(name)
    with pytest.raises(NoteError):
        check_key_name(name)
    with pytest.raises(NoteError):
        sign_note("text\n", name, LOG_KEY)
    with pytest.raises(NoteError):
        encode_vkey(name, bytes(32))


@pytest.mark.parametrize("name", ["a", "example.com/log42", "é", "a—b", "a\x7fb", "a\u200bb"])
def test_valid_key_names(name: str) -> None:
    assert is_valid_key_name(name)
    note = sign_note("text\n", name, LOG_KEY)
    verifier = parse_vkey(encode_vkey(name, LOG_KEY.public_key().public_bytes_raw()))
    assert open_note(note, [verifier]).verified_by == (name,)


def test_vkey_with_a_wrong_key_id() -> None:
    vkey = PETER_VKEY.replace("c74f20a3", "c74f20a4")
    with pytest.raises(NoteError, match="key ID c74f20a4 does not match the name and key"):
        parse_vkey(vkey)
    with pytest.raises(NoteError, match="does not match"):
        parse_vkey(PETER_VKEY.replace("PeterNeumann", "PeterNeuman"))


@pytest.mark.parametrize(
    "vkey",
    [
        PETER_VKEY.replace("c74f20a3", "C74F20A3"),  # uppercase hex: not canonical
        PETER_VKEY.replace("c74f20a3", "c74f20a"),
        PETER_VKEY[:-1] + "X",  # unused bits set: non-canonical base64
        PETER_VKEY + "=",
        PETER_VKEY.replace("+ARpc", "+ ARpc"),
        "PeterNeumann+c74f20a3",
        "PeterNeumann",
    ],
)
def test_non_canonical_vkeys(vkey: str) -> None:
    with pytest.raises(NoteError):
        parse_vkey(vkey)


def test_verifier_key_id_is_checked() -> None:
    raw = peter().public_key_raw
    with pytest.raises(NoteError, match="is not the key ID"):
        NoteVerifier("PeterNeumann", bytes(4), raw)
    with pytest.raises(NoteError, match="32 raw bytes"):
        NoteVerifier.for_public_key("PeterNeumann", raw[:31])


def test_ambiguous_verifiers_are_refused() -> None:
    forged = NoteVerifier.__new__(NoteVerifier)
    object.__setattr__(forged, "name", "PeterNeumann")
    object.__setattr__(forged, "key_id", bytes.fromhex("c74f20a3"))
    object.__setattr__(forged, "public_key_raw", bytes(32))
    with pytest.raises(NoteError, match="ambiguous"):
        open_note(GO_NOTE, [peter(), forged])
    # The same key twice is harmless.
    assert open_note(GO_NOTE, [peter(), peter()]).verified_by == ("PeterNeumann",)


def test_b64std_decode_is_canonical() -> None:
    assert b64std_decode("AA==") == b"\x00"
    for bad in ("AB==", "AA", "AA=", "A===", "AA==\n", " AA==", "AA-_", "AA==AA=="):
        with pytest.raises(ValueError):
            b64std_decode(bad)


# ================================================================================================
# Notes
# ================================================================================================


def test_sign_note_refuses_bad_texts() -> None:
    with pytest.raises(NoteError, match="must end with a newline"):
        sign_note("no final newline", LOG_NAME, LOG_KEY)
    with pytest.raises(NoteError, match="must end with a newline"):
        sign_note("", LOG_NAME, LOG_KEY)
    with pytest.raises(NoteError, match=r"control character \(U\+0009\) on line 2"):
        sign_note("one\ntwo\tthree\n", LOG_NAME, LOG_KEY)
    with pytest.raises(NoteError, match="U\\+000D"):
        sign_note("windows\r\n", LOG_NAME, LOG_KEY)
    with pytest.raises(NoteError, match="lone surrogate"):
        sign_note("\ud800\n", LOG_NAME, LOG_KEY)
    with pytest.raises(TypeError):
        sign_note(b"bytes\n", LOG_NAME, LOG_KEY)  # type: ignore[arg-type]


def test_texts_with_empty_lines_and_signature_like_lines() -> None:
    for text in ("\n", "\n\n", "a\n\n\n", "a\n\n— x AAAAAAA=\n", "— " + LOG_NAME + " x\n"):
        note = sign_note(text, LOG_NAME, LOG_KEY)
        assert open_note(note, [LOG_VERIFIER]).text == text


def test_altered_text_is_rejected() -> None:
    note = sign_note("size 10\n", LOG_NAME, LOG_KEY)
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note.replace("10", "11"), [LOG_VERIFIER])


def test_signature_by_another_key_is_rejected() -> None:
    note = sign_note("hello\n", LOG_NAME, OTHER_KEY)
    with pytest.raises(NoteError, match="not signed by any known key"):
        open_note(note, [LOG_VERIFIER])
    # The right key name and key ID over another key's signature: a forgery.
    forged = NoteSignature(LOG_NAME, LOG_VERIFIER.key_id, OTHER_KEY.sign(b"hello\n"))
    with pytest.raises(NoteError, match="does not verify"):
        open_note("hello\n\n" + forged.line(), [LOG_VERIFIER])


def test_wrong_key_name_is_an_unknown_key() -> None:
    note = sign_note("hello\n", "another.example/log", LOG_KEY)
    with pytest.raises(NoteError, match="not signed by any known key"):
        open_note(note, [LOG_VERIFIER])


def test_wrong_signature_lengths() -> None:
    short = NoteSignature(LOG_NAME, LOG_VERIFIER.key_id, LOG_KEY.sign(b"hello\n")[:63])
    with pytest.raises(NoteError, match="does not verify"):
        open_note("hello\n\n" + short.line(), [LOG_VERIFIER])
    with pytest.raises(NoteError, match="too short"):
        open_note("hello\n\n— " + LOG_NAME + " AAAAAA==\n", [LOG_VERIFIER])


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("hello\n\n— " + LOG_NAME + "\n", "no signature after the key name"),
        ("hello\n\n— " + LOG_NAME + " \n", "no signature after the key name"),
        ("hello\n\n— " + LOG_NAME + "  AAAAAAA=\n", "key name must not be empty|base64"),
        ("hello\n\n—  AAAAAAA=\n", "key name must not be empty"),
        ("hello\n\n-- " + LOG_NAME + " AAAAAAA=\n", "does not start with an em dash"),
        ("hello\n\n—" + LOG_NAME + " AAAAAAA=\n", "does not start with an em dash"),
        ("hello\n\n— " + LOG_NAME + " AAAAAAA=\n\n", "no signature lines"),
        ("hello\n\n— " + LOG_NAME + " AAAAAAA=\r\n", "control character U\\+000D"),
        ("hello\n\n— " + LOG_NAME + " AAAAAA==\n", "too short"),
        ("hello\n\n— " + LOG_NAME + " AAAAAAB=\n", "non-canonical base64"),
        ("hello\n\n— " + LOG_NAME + " AAAAAAA\n", "not padded standard base64"),
        ("hello\n\n— " + LOG_NAME + " AAAA_AA=\n", "not padded standard base64"),
        ("hello\n— " + LOG_NAME + " AAAAAAA=\n", "no blank line"),
        ("hello\n\n", "no signature lines"),
    ],
)
def test_malformed_signature_blocks(note: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        open_note(note, [LOG_VERIFIER])


def test_non_canonical_base64_of_a_valid_signature_is_refused() -> None:
    assert PETER_SIG.endswith("AM=\n")  # 68 bytes: the last character has 2 unused bits
    with pytest.raises(NoteError, match="non-canonical base64"):
        open_note(GO_TEXT + "\n" + PETER_SIG.replace("AM=\n", "AN=\n"), [peter()])


def test_add_signature_replaces_the_signers_own_line() -> None:
    note = sign_note(GO_TEXT, LOG_NAME, LOG_KEY)
    cosigned = add_signature(note + PETER_SIG, LOG_NAME, LOG_KEY)
    assert cosigned == GO_TEXT + "\n" + PETER_SIG + note.split("\n\n")[1]
    opened = open_note(cosigned, [peter(), LOG_VERIFIER])
    assert opened.verified_by == ("PeterNeumann", LOG_NAME)
    with pytest.raises(NoteError, match="malformed"):
        add_signature(GO_TEXT, LOG_NAME, LOG_KEY)


def test_open_note_refuses_other_types() -> None:
    with pytest.raises(TypeError):
        open_note(42, [peter()])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        open_note(GO_NOTE, [PETER_VKEY])  # type: ignore[list-item]


# ================================================================================================
# Round trips
# ================================================================================================

LINE = st.text(st.characters(min_codepoint=0x20, exclude_categories=("Cs",)), max_size=40)
TEXT = st.lists(LINE, min_size=1, max_size=6).map(lambda lines: "".join(f"{x}\n" for x in lines))
NAME = st.text(
    st.characters(
        min_codepoint=0x21,
        exclude_categories=("Cs",),
        exclude_characters="".join(UNICODE_SPACES) + "+",
    ),
    min_size=1,
    max_size=30,
)
NONEMPTY_LINE = LINE.filter(bool)


@settings(max_examples=150, deadline=None)
@given(text=TEXT, name=NAME)
def test_sign_and_open_round_trip(text: str, name: str) -> None:
    verifier = NoteVerifier.for_public_key(name, LOG_KEY.public_key().public_bytes_raw())
    assert parse_vkey(verifier.vkey()) == verifier
    note = sign_note(text, name, LOG_KEY)
    assert note.startswith(text + "\n— " + name + " ")
    opened = open_note(note.encode("utf-8"), [verifier])
    assert (opened.text, opened.verified_by) == (text, (name,))
    assert "".join(sig.line() for sig in opened.signatures) == note[len(text) + 1 :]


@settings(max_examples=100, deadline=None)
@given(text=TEXT, index=st.integers(min_value=0), char=st.characters(min_codepoint=0x20))
def test_any_change_of_the_text_is_detected(text: str, index: int, char: str) -> None:
    note = sign_note(text, LOG_NAME, LOG_KEY)
    index %= len(text)
    changed = text[:index] + char + text[index + 1 :]
    if changed == text or "\ud800" <= char <= "\udfff":
        return
    if not changed.endswith("\n"):
        changed += "\n"
    with pytest.raises(NoteError):
        open_note(changed + note[len(text) :], [LOG_VERIFIER])


@settings(max_examples=150, deadline=None)
@given(
    origin=NONEMPTY_LINE,
    size=st.integers(min_value=0, max_value=MAX_TREE_SIZE),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(NONEMPTY_LINE, max_size=3).map(tuple),
)
def test_checkpoint_round_trip(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    checkpoint = Checkpoint(origin, size, root, extensions)
    text = checkpoint.to_text()
    assert text.split("\n")[1:3] == [str(size), base64.b64encode(root).decode()]
    assert parse_checkpoint(text) == checkpoint


@settings(max_examples=60, deadline=None)
@given(
    name=NAME,
    size=st.integers(min_value=0, max_value=MAX_TREE_SIZE),
    root=st.binary(min_size=32, max_size=32),
)
def test_signed_checkpoint_round_trip(name: str, size: int, root: bytes) -> None:
    verifier = NoteVerifier.for_public_key(name, LOG_KEY.public_key().public_bytes_raw())
    checkpoint = Checkpoint(name, size, root)
    assert open_checkpoint(sign_checkpoint(checkpoint, name, LOG_KEY), verifier) == checkpoint


# ================================================================================================
# Checkpoints
# ================================================================================================


def signed(size: int = 10, root: bytes = ROOT, *extensions: str) -> str:
    return sign_checkpoint(Checkpoint(LOG_NAME, size, root, extensions), LOG_NAME, LOG_KEY)


def test_checkpoint_text_format() -> None:
    checkpoint = Checkpoint(LOG_NAME, 0, bytes(32), ("ext one",))
    assert checkpoint.to_text() == (
        f"{LOG_NAME}\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next one\n"
    )
    note = signed(7, ROOT, "x")
    assert open_checkpoint(note, LOG_VERIFIER) == Checkpoint(LOG_NAME, 7, ROOT, ("x",))


def test_checkpoint_with_witness_cosignatures() -> None:
    other_public = OTHER_KEY.public_key().public_bytes_raw()
    witness = NoteVerifier.for_public_key("witness.example", other_public)
    cosigned = add_signature(signed(), "witness.example", OTHER_KEY)
    assert open_checkpoint(cosigned, LOG_VERIFIER).size == 10
    with pytest.raises(CheckpointError, match="origin .* is not the name of the log key"):
        open_checkpoint(cosigned, witness)


def test_altered_size_and_root_are_rejected() -> None:
    note = signed(10)
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(note.replace("\n10\n", "\n11\n"), LOG_VERIFIER)
    encoded = base64.b64encode(ROOT).decode()
    altered = base64.b64encode(bytes([ROOT[0] ^ 1]) + ROOT[1:]).decode()
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(note.replace(encoded, altered), LOG_VERIFIER)


def test_checkpoint_signed_by_another_key() -> None:
    note = sign_note(Checkpoint(LOG_NAME, 10, ROOT).to_text(), LOG_NAME, OTHER_KEY)
    with pytest.raises(CheckpointError, match="not signed by any known key"):
        open_checkpoint(note, LOG_VERIFIER)


def test_checkpoint_origin_must_be_the_key_name() -> None:
    checkpoint = Checkpoint("another.example/log", 10, ROOT)
    with pytest.raises(CheckpointError, match="signed under its origin"):
        sign_checkpoint(checkpoint, LOG_NAME, LOG_KEY)
    note = sign_note(checkpoint.to_text(), LOG_NAME, LOG_KEY)
    with pytest.raises(CheckpointError, match="origin 'another.example/log' is not the name"):
        open_checkpoint(note, LOG_VERIFIER)


def test_checkpoint_missing_final_newline() -> None:
    with pytest.raises(CheckpointError, match="must end with a newline"):
        parse_checkpoint(Checkpoint(LOG_NAME, 10, ROOT).to_text()[:-1])
    with pytest.raises(CheckpointError, match="malformed note"):
        open_checkpoint(signed()[:-1], LOG_VERIFIER)


def _text(size: str = "10", root: str = base64.b64encode(ROOT).decode(), *rest: str) -> str:
    return "".join(f"{line}\n" for line in (LOG_NAME, size, root, *rest))


@pytest.mark.parametrize(
    "size",
    ["01", "00", "+1", "-1", " 1", "1 ", "1_0", "0x10", "1e3", "١", "", str(2**64), "9" * 5000],
)
def test_non_canonical_sizes_are_refused(size: str) -> None:
    with pytest.raises(CheckpointError, match="line 2"):
        parse_checkpoint(_text(size))
    note = sign_note(_text(size), LOG_NAME, LOG_KEY)
    with pytest.raises(CheckpointError, match="line 2"):
        open_checkpoint(note, LOG_VERIFIER)


def test_size_bounds() -> None:
    assert parse_checkpoint(_text("0")).size == 0
    assert parse_checkpoint(_text(str(2**64 - 1))).size == 2**64 - 1
    for size in (-1, 2**64, True, 1.0):
        with pytest.raises(CheckpointError):
            Checkpoint(LOG_NAME, size, ROOT)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("root", "message"),
    [
        (base64.b64encode(ROOT[:31]).decode(), "31 bytes, not 32"),
        (base64.b64encode(ROOT + b"\0").decode(), "33 bytes, not 32"),
        (base64.b64encode(ROOT).decode().rstrip("="), "not padded standard base64"),
        (base64.urlsafe_b64encode(b"\xff" * 32).decode(), "not padded standard base64"),
        (base64.b64encode(ROOT).decode()[:-2] + "h=", "non-canonical"),
        ("", "must not be empty"),
    ],
)
def test_bad_root_hashes_are_refused(root: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        parse_checkpoint(_text("10", root))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{LOG_NAME}\n10\n", "at least 3 lines"),
        ("\n10\n" + base64.b64encode(ROOT).decode() + "\n", "line 1: the origin must not be empty"),
        (_text("10", base64.b64encode(ROOT).decode(), ""), "extension line 1 must not be empty"),
        (_text("10", base64.b64encode(ROOT).decode(), "a", "", "b"), "line 5: the extension"),
        (_text("10", base64.b64encode(ROOT).decode(), "a\tb"), "control character"),
        (_text() + "\n", "extension line 1 must not be empty"),
    ],
)
def test_malformed_checkpoint_texts(text: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        parse_checkpoint(text)


def test_checkpoint_fields_are_checked() -> None:
    with pytest.raises(CheckpointError, match="origin must not be empty"):
        Checkpoint("", 1, ROOT)
    with pytest.raises(CheckpointError, match="control character"):
        Checkpoint("a\nb", 1, ROOT)
    with pytest.raises(CheckpointError, match="32 bytes"):
        Checkpoint(LOG_NAME, 1, ROOT[:31])
    with pytest.raises(CheckpointError, match="extension line 2 must not be empty"):
        Checkpoint(LOG_NAME, 1, ROOT, ("a", ""))
    with pytest.raises(CheckpointError, match="not a string"):
        Checkpoint(LOG_NAME, 1, ROOT, "abc")  # type: ignore[arg-type]
    assert Checkpoint(LOG_NAME, 1, ROOT, ["a"]).extensions == ("a",)  # type: ignore[arg-type]


def test_origin_with_spaces_parses_but_cannot_match_a_key_name() -> None:
    """The spec: clients MUST NOT assume the origin is a URL without spaces."""
    assert parse_checkpoint(_text().replace(LOG_NAME, "my log", 1)).origin == "my log"
