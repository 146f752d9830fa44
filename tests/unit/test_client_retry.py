"""`ledger.client.retry.RetryPolicy`: how long the client waits before sending the same bytes again."""

from __future__ import annotations

from ledger.client.retry import RetryPolicy


def test_waits_grow_and_stay_bounded() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    waits = [policy.delay(attempt) for attempt in range(8)]
    assert all(0.5 * 0.75 <= w <= 8.0 for w in waits)
    assert waits[3] > waits[0]  # 4 s * jitter (>= 3 s) against 0.5 s at most
    assert max(waits) >= 8.0 * 0.75


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_retry_after=30.0)
    assert policy.delay(0, "5") >= 5.0
    assert policy.delay(0, "3600") == 30.0
    assert policy.delay(0, "Wed, 21 Oct 2015 07:28:00 GMT") <= 0.5  # a date is not understood: the backoff
    assert policy.delay(0, "-4") <= 0.5
