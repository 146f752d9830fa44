"""verification.collector: a replay collects garbage rarely, and leaves the collector as it found it."""

from __future__ import annotations

import gc

import pytest

from test_replay import Log
from verification import collector
from verification.parallel import replay_entries


def test_rare_collections_raise_the_first_threshold_and_put_it_back() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with collector.rare_collections():
            assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, 10, 10)
        assert gc.get_threshold() == (700, 10, 10)
        with pytest.raises(RuntimeError), collector.rare_collections():
            raise RuntimeError("a replay that fails")
        assert gc.get_threshold() == (700, 10, 10)
        gc.set_threshold(10 * collector.YOUNG_THRESHOLD, 5, 5)  # a caller's higher threshold is never lowered
        with collector.rare_collections():
            assert gc.get_threshold() == (10 * collector.YOUNG_THRESHOLD, 5, 5)
        assert gc.get_threshold() == (10 * collector.YOUNG_THRESHOLD, 5, 5)
    finally:
        gc.set_threshold(*before)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_replay_runs_with_rare_collections_and_restores_the_threshold(workers: int) -> None:
    log = Log()
    seen: list[int] = []
    before = gc.get_threshold()
    result = replay_entries(log.entries, workers=workers, mp_context="fork",
                            observe=lambda entry, seq: seen.append(gc.get_threshold()[0]))
    assert result.size == len(log.entries) > 0
    assert seen and set(seen) == {max(before[0], collector.YOUNG_THRESHOLD)}
    assert gc.get_threshold() == before
