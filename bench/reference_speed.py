"""The unit of every CPU figure in docs/benchmarks.md: the CPU time of one Ed25519 verification.

The machine's speed drifts about 2x between days, so costs are stated as CPU time per unit of work over the CPU
time of one Ed25519 verification (`cryptography`, over a 420-byte message: a typical event body) measured in the
same run. CPU time of this process (`time.process_time`), not wall time, which other processes on a shared machine
stretch. Imports nothing of tagledger, so benches that serve another checkout (A/B by PYTHONPATH) can use it.
"""

from __future__ import annotations

import statistics
import time


def verification_cpu_seconds(seconds: float = 1.0, rounds: int = 1) -> float:
    """CPU seconds of one verification: the median over `rounds` rounds of about `seconds / rounds` each."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    message = b"x" * 420
    signature, public = key.sign(message), key.public_key()
    per_round = []
    for _ in range(rounds):
        n, t0 = 0, time.process_time()
        while time.process_time() - t0 < seconds / rounds:
            for _ in range(200):
                public.verify(signature, message)
            n += 200
        per_round.append((time.process_time() - t0) / n)
    return statistics.median(per_round)
