"""The replay's worker processes (verification.parallel) when one fails or dies: the calling process says so in one
error and leaves no process behind. (Their results, including chunks of 1,000 entries whose results are many
pipe-fulls: tests/unit/test_replay.py, parallel equal to sequential.)"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

import pytest

from tests.unit.test_replay import Log
from verification import parallel

FORK = multiprocessing.get_context("fork")  # the workers inherit the patched check_entry


def _entries() -> list[bytes]:
    log = Log()
    for tag in ("BAG-1", "BAG-2", "LOT-01", "LOT-02", "LOT-03"):
        log.attach(tag)
    return log.entries


def _on_entry(seq_wanted: int, then: Any) -> Any:
    real = parallel.check_entry

    def check(raw: bytes, *args: Any) -> Any:
        checked = real(raw, *args)
        if getattr(checked, "seq", None) == seq_wanted:
            then()
        return checked

    return check


def _raise() -> None:
    raise ValueError("a bug in a check")


def test_a_worker_that_raises_is_reported_with_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = _entries()
    monkeypatch.setattr(parallel, "check_entry", _on_entry(len(entries) - 2, _raise))
    with pytest.raises(RuntimeError, match=r"(?s)replay worker failed on chunk \d+:.*ValueError: a bug in a check"):
        parallel.replay_entries(entries, workers=2, chunk_size=3, mp_context=FORK)
    assert multiprocessing.active_children() == []


def test_a_worker_that_dies_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = _entries()
    monkeypatch.setattr(parallel, "check_entry", _on_entry(5, lambda: os._exit(3)))
    with pytest.raises(RuntimeError, match=r"replay worker \d died \(exit code 3\)"):
        parallel.replay_entries(entries, workers=2, chunk_size=2, mp_context=FORK)
    assert multiprocessing.active_children() == []

