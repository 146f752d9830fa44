"""What the writer keeps between its write transactions, so that a transaction reads less (issue 13).

After each commit the writer knows the log exactly as it left it: its size, the time of its last entry, and the
custody state of every tag it read or wrote. The next transaction uses what is kept only if the log's size is
still the one it left (the log is append-only and gapless, so an unchanged size means nobody else wrote: another
worker process, or a `tagledger` command, on the same store); otherwise, or after any failure, it is all
forgotten and read again. A tag's state is the fold of the events carrying its stream, whether folded from the
store or kept from earlier transactions: `tests/ledger/test_writer_memory.py` compares the two.
"""

from __future__ import annotations

from datetime import datetime
from itertools import islice

from domain.custody import TagState

MAX_TAGS = 20_000
"""Tag states kept at most; beyond, the oldest half is dropped (a dropped state is read from the store again)."""


class WriterMemory:
    def __init__(self, max_tags: int = MAX_TAGS):
        self.max_tags = max_tags
        self.size: int | None = None
        """The log's size after this writer's last commit, while what is kept is valid; else None."""
        self.last_time: datetime | None = None
        """The `received` time of the log's last entry (None: the log is empty)."""
        self.tags: dict[str, TagState] = {}

    def valid_at(self, size: int) -> bool:
        """Whether what is kept describes a log of `size` entries; if not, it is forgotten."""
        if self.size == size:
            return True
        self.forget()
        return False

    def forget(self) -> None:
        self.size = None
        self.last_time = None
        self.tags = {}

    def committed(self, size: int, last_time: datetime | None) -> None:
        """The writer's transaction committed and the log now holds `size` entries."""
        self.size = size
        self.last_time = last_time
        if len(self.tags) > self.max_tags:
            for tag in list(islice(self.tags, len(self.tags) - self.max_tags // 2)):
                del self.tags[tag]
