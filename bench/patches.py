"""EXPERIMENTS ONLY: monkeypatches that try out suggested fixes to ledger/ and domain/ without editing them.

The benchmarks never apply these unless asked (`--patch NAME`, or TAGLEDGER_BENCH_PATCHES=NAME,... for the
server). They exist to put a number on a suggested change before anyone makes it for real; results measured with
a patch are labelled with it.

  issued-subset   `domain.custody.apply(..., only=...)` on a `tags_issued` event tests each wanted tag for
                  membership in the issued ranges (O(wanted)) instead of expanding and re-validating every issued
                  tag, building a JSON Pointer per tag (O(issued), up to 10,000 per event, on every batch and read)
  no-tags-column  reads by tag (`read_tagged`) do not fetch the `tags` column, which for a `tags_issued` event
                  holds a stream name per issued tag (10,000 strings to transfer and decode per row)
  switch-interval `sys.setswitchinterval(0.0005)` (default 0.005): the writer thread gives up the GIL on every
                  database round trip; with the event loop (or submitting threads) busy, getting it back can take
                  up to the switch interval each time
"""

from __future__ import annotations

import os
from typing import Any

APPLIED: list[str] = []


def _issued_subset(data: dict[str, Any], only: set[str]) -> list[str]:
    found = [t for t in data.get("tags") or () if t in only]
    for r in data.get("ranges") or ():
        prefix, start, count, width = r["prefix"], r["start"], r["count"], r["width"]
        for tag in only:
            if tag.startswith(prefix):
                digits = tag[len(prefix):]
                if digits.isascii() and digits.isdigit():
                    n = int(digits)
                    if start <= n < start + count and str(n).zfill(width) == digits:
                        found.append(tag)
    return found


def patch_issued_subset() -> None:
    from domain import custody
    from domain.custody import TagState
    from domain.registry import StreamHead
    from verification.encoding import parse_time

    original = custody.apply

    def apply(tags, body, envelope_hash, seq, only=None):  # noqa: ANN001, ANN202
        if body["type"] != "tags_issued" or only is None:
            return original(tags, body, envelope_hash, seq, only)
        head = StreamHead(envelope_hash, seq, parse_time(body["time"]))
        recipient = body["stream"].removeprefix("org:")
        for tag in _issued_subset(body["data"], only):
            tags[tag] = TagState(tag=tag, issued_to=recipient, head=head, events=1)
        return None

    custody.apply = apply


def patch_no_tags_column() -> None:
    from ledger.store import postgres, sqlite

    postgres._SELECT_TAGGED = postgres._SELECT_TAGGED.replace("SELECT id, type, data, tags FROM",
                                                              "SELECT id, type, data, '{}'::text[] AS tags FROM")
    orig_row = sqlite._row

    def _select_tagged(curs, tags, after, limit=None):  # noqa: ANN001, ANN202
        found = {}
        tags = list(dict.fromkeys(tags))
        for i in range(0, len(tags), sqlite._MAX_VARS):
            chunk = tags[i: i + sqlite._MAX_VARS]
            marks = ",".join("?" * len(chunk))
            curs.execute(
                f"SELECT id, type, data, '[]' AS tags FROM {sqlite.MAIN} WHERE id IN "
                f"(SELECT main_id FROM {sqlite.TAGS} WHERE tag IN ({marks}) AND main_id > ?) ORDER BY id",
                [*chunk, after],
            )
            for row in curs.fetchall():
                found[row["id"]] = orig_row(row)
        events = [found[k] for k in sorted(found)]
        return events[:limit] if limit is not None else events

    sqlite._select_tagged = _select_tagged


def patch_switch_interval() -> None:
    import sys

    sys.setswitchinterval(0.0005)


PATCHES = {"issued-subset": patch_issued_subset, "no-tags-column": patch_no_tags_column,
           "switch-interval": patch_switch_interval}


def apply(names: list[str] | str | None) -> list[str]:
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    for name in names or []:
        if name in APPLIED:
            continue
        PATCHES[name]()
        APPLIED.append(name)
    return APPLIED


def apply_from_env() -> list[str]:
    return apply(os.environ.get("TAGLEDGER_BENCH_PATCHES", ""))
