"""Rule ``event.duplicate_id`` over a whole log, in about 8 bytes per entry.

Exact membership of arbitrary 128-bit ids cannot be kept in 8 bytes per id, and a Python ``set`` of a
million ids costs about 100 bytes each. So the replay keeps, for every event id seen, a 64-bit
*fingerprint* -- BLAKE2b keyed with a secret chosen at random for each replay
(:func:`verification.entry_checks.fingerprint`) -- in :class:`FingerprintSet`:

- a real duplicate is always found (equal ids have equal fingerprints): no false negatives;
- two different ids collide only by chance, and since the key is secret and random, nobody writing to the
  ledger can aim for a collision: over a log of ``n`` events the probability of any false alarm is at most
  ``n**2 / 2**65`` (3e-8 for a million events, 3e-4 for a hundred million). A duplicate is reported at
  the later entry (the earlier one's seq is not kept); re-running the replay draws a new key, so a false
  alarm does not repeat, while a real duplicate does.

The fingerprints are kept in sorted ``array('Q')`` buckets, selected by the fingerprint's top bits; when the
buckets grow past :data:`MAX_BUCKET_MEAN` fingerprints on average they are split in two by the next bit
(by bisection and slicing, no re-hashing). Memory: 8 bytes per fingerprint, plus the arrays' growth slack
(at most 1/16 of a bucket) and about 80 bytes per bucket of at least 256 fingerprints: under 9 bytes per
entry in all. An insertion is a bisection and a ``memmove`` of at most a few kilobytes.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left

__all__ = ["FingerprintSet", "MAX_BUCKET_MEAN"]

MAX_BUCKET_MEAN = 1024
"""Split the buckets when they hold this many fingerprints on average (then they hold half as many)."""
_BITS = 64


class FingerprintSet:
    """A set of 64-bit integers, ~8 bytes each: :meth:`add` says whether the value was new."""

    __slots__ = ("_buckets", "_shift", "_count")

    def __init__(self) -> None:
        self._buckets: list[array] = [array("Q")]
        self._shift = _BITS  # bucket of x = x >> _shift (one bucket: shift by 64 gives 0)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, value: int) -> bool:
        bucket = self._buckets[value >> self._shift]
        i = bisect_left(bucket, value)
        return i < len(bucket) and bucket[i] == value

    def add(self, value: int) -> bool:
        """Insert ``value`` (0 <= value < 2**64); False if it was already there."""
        bucket = self._buckets[value >> self._shift]
        i = bisect_left(bucket, value)
        if i < len(bucket) and bucket[i] == value:
            return False
        bucket.insert(i, value)
        self._count += 1
        if self._count > MAX_BUCKET_MEAN * len(self._buckets) and self._shift > 1:
            self._split()
        return True

    def _split(self) -> None:
        """Double the buckets: bucket k becomes 2k (next bit 0) and 2k + 1 (next bit 1)."""
        old, self._buckets = self._buckets, []
        shift = self._shift - 1
        for k in range(len(old)):
            bucket, old[k] = old[k], None  # type: ignore[call-overload]  # free each as it is split
            middle = bisect_left(bucket, ((k << 1) | 1) << shift)
            self._buckets.append(bucket[:middle])
            self._buckets.append(bucket[middle:])
        self._shift = shift

    def memory_bytes(self) -> int:
        """An estimate of the memory held (the arrays' allocations and the list of buckets)."""
        return sum(map(sys.getsizeof, self._buckets)) + sys.getsizeof(self._buckets)
