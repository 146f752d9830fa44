"""Ed25519 libraries on the protocol's edge cases: which signatures each accepts, and its CPU per verification.

The protocol pins OpenSSL's acceptance rule (docs/protocol.md section 4). Another library may verify faster,
but it can only replace OpenSSL where it gives the same verdict on every signature, adversarial ones included.
This prints, for every vector of verification/vectors/ed25519-edge-cases.json, the protocol's verdict,
`cryptography`'s and PyNaCl's (libsodium), then the CPU time of one verification of an ordinary signature over a 420-byte message
(bench/reference_speed.py's unit) by each library, in alternating rounds, with the ratio to `cryptography` in
the same run.

With PyNaCl it also times ledger/fast_signatures.py's verifier (libsodium, then OpenSSL if libsodium refuses) on
the same signature and on a refused one. Without PyNaCl it prints `cryptography`'s column, says so, and exits 0.

    flock /work/notes/bench.lock .venv/bin/python bench/ed25519_libraries.py [--rounds 8] [--seconds 0.5]

Exit status 1 if `cryptography` does not give the protocol's verdict on some vector (then the reference
verifier itself has changed: see tests/unit/test_ed25519_edge_cases.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

VECTORS = Path(__file__).resolve().parent.parent / "verification" / "vectors" / "ed25519-edge-cases.json"
MESSAGE = b"x" * 420  # a typical event body, as in bench/reference_speed.py

Verifier = Callable[[bytes, bytes, bytes], bool]  # (public key, signature, message) -> accepted


def cryptography_verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def pynacl_verifier() -> tuple[Verifier, str] | None:
    """PyNaCl's verification and its version, or None if PyNaCl is not installed."""
    try:
        import nacl
        from nacl.exceptions import BadSignatureError
        from nacl.signing import VerifyKey
    except ImportError:
        return None

    def verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
        try:
            VerifyKey(public_key).verify(message, signature)
        except BadSignatureError:
            return False
        return True

    return verifies, nacl.__version__


def verdict_table(verifiers: dict[str, Verifier]) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """Markdown rows: vector, the protocol's verdict, each library's (marked where it differs); and per library,
    how many vectors it accepts that the protocol refuses, and refuses that the protocol accepts."""
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))["vectors"]
    names = list(verifiers)
    rows = ["| vector | protocol | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    differs = {name: [0, 0] for name in names}
    for vector in vectors:
        key, signature, message = (bytes.fromhex(vector[field]) for field in ("public_key", "signature", "message"))
        expected = vector["verdict"] == "accept"
        cells = []
        for name, verify in verifiers.items():
            accepted = verify(key, signature, message)
            cells.append(("accept" if accepted else "reject") + ("" if accepted is expected else " **(differs)**"))
            if accepted is not expected:
                differs[name][0 if accepted else 1] += 1
        rows.append(f"| {vector['name']} | {vector['verdict']} | " + " | ".join(cells) + " |")
    return rows, {name: (more, fewer) for name, (more, fewer) in differs.items()}


def _cpu_per_call(call: Callable[[], object], seconds: float) -> float:
    n, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        for _ in range(100):
            call()
        n += 100
    return (time.process_time() - start) / n


def speed(rounds: int, seconds: float, with_pynacl: bool) -> dict[str, list[float]]:
    """CPU seconds per verification of one valid signature, per library, in alternating rounds."""
    private_key = Ed25519PrivateKey.generate()
    signature = private_key.sign(MESSAGE)
    public = private_key.public_key()
    calls: dict[str, Callable[[], object]] = {"cryptography": lambda: public.verify(signature, MESSAGE)}
    if with_pynacl:
        from nacl.signing import VerifyKey

        from ledger.fast_signatures import FastVerifier, libsodium_open

        verify_key = VerifyKey(public.public_bytes_raw())
        calls["PyNaCl"] = lambda: verify_key.verify(MESSAGE, signature)
        # what the ledger uses (ledger/fast_signatures.py): an ordinary signature, and a refused one (both libraries)
        fast, raw = FastVerifier(libsodium_open()), public.public_bytes_raw()
        refused = signature[:40] + bytes([signature[40] ^ 1]) + signature[41:]
        calls["fast path"] = lambda: fast.verify(raw, signature, MESSAGE)
        calls["fast, refused"] = lambda: fast.verify(raw, refused, MESSAGE)
    results: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            results[name].append(_cpu_per_call(call, seconds))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds per library (default 8)")
    parser.add_argument("--seconds", type=float, default=0.5, help="CPU seconds per round (default 0.5)")
    args = parser.parse_args()

    pynacl = pynacl_verifier()
    verifiers: dict[str, Verifier] = {"cryptography": cryptography_verifies}
    if pynacl is not None:
        verifiers["PyNaCl"] = pynacl[0]
    import cryptography

    print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load average {os.getloadavg()[0]:.2f}, "
          f"cryptography {cryptography.__version__}"
          + (f", PyNaCl {pynacl[1]}" if pynacl else ""))
    rows, differs = verdict_table(verifiers)
    print("\n".join(rows))
    for name, (more, fewer) in differs.items():
        print(f"{name}: accepts {more} vector(s) the protocol refuses, refuses {fewer} it accepts"
              + (" (so 'accept if it accepts, else ask cryptography' gives the protocol's verdict on these)"
                 if name != "cryptography" and more == 0 else ""))
    if pynacl is None:
        print("PyNaCl is not installed (a dependency since docs/benchmarks.md 12.8): only cryptography's verdicts "
              "and speed.")

    results = speed(args.rounds, args.seconds, pynacl is not None)
    reference = results["cryptography"]
    print(f"\nCPU per verification, {args.rounds} alternating rounds of {args.seconds} s, 420-byte message:")
    for name, per_round in results.items():
        ratios = [mine / theirs for mine, theirs in zip(per_round, reference, strict=True)]
        print(f"  {name:12} median {statistics.median(per_round) * 1e6:6.1f} µs "
              f"(rounds {min(per_round) * 1e6:.1f}-{max(per_round) * 1e6:.1f}); "
              f"ratio to cryptography: median {statistics.median(ratios):.2f} "
              f"(rounds {min(ratios):.2f}-{max(ratios):.2f})")
    if sum(differs["cryptography"]):
        print("cryptography no longer gives the protocol's verdict: see tests/unit/test_ed25519_edge_cases.py")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
