"""When the client sends the same request again, and when it gives up (docs/protocol.md 8.1).

An answer 502, 503 or 504, a connection error or a timeout leaves a write without a definite outcome: it may
or may not be in the log. The client then sends **the identical bytes** again — never a re-signed envelope,
which would carry a new event id and could record the event twice — a bounded number of times, waiting longer
each time and at least what `Retry-After` asks. The ledger answers a resubmission of a recorded envelope with
its original receipt, so nothing is ever recorded twice. Re-signing happens only after a definite refusal that
asks for it, 409 `stream.conflict` (`ledger.client.verbs`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

RESUBMIT_STATUSES = frozenset({502, 503, 504})
"""Answers that say nothing definite about a write: send the same bytes again."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    """Sends in all (the first and up to `attempts - 1` resubmissions)."""
    base_delay: float = 0.5
    """Seconds before the first resubmission; doubled each time (with jitter), up to `max_delay`."""
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    """A `Retry-After` longer than this is cut to it."""

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed send number `attempt` (0 = the first): the backoff, and at least the
        server's `Retry-After` (in seconds; a date or garbage is ignored)."""
        backoff = min(self.max_delay, self.base_delay * 2**attempt) * random.uniform(0.75, 1.0)
        try:
            asked = float(retry_after) if retry_after is not None else 0.0
        except ValueError:
            asked = 0.0
        return max(backoff, min(max(asked, 0.0), self.max_retry_after))


NO_RETRY = RetryPolicy(attempts=1)
