"""Nothing acknowledged is lost across a crash: kill -9 a writing process, reopen, find every ack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ledger.entries import read_entry
from ledger.service import Ledger

ROOT = Path(__file__).resolve().parents[2]


def test_acknowledged_entries_survive_a_killed_process(store_url: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.ledger.crash_child", store_url],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    acks: dict[int, str] = {}
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("ACK"):
            _, seq, digest = line.split()
            acks[int(seq)] = digest
            if len(acks) >= 60:
                child.send_signal(signal.SIGKILL)  # mid-stream: other threads have writes in flight
                break
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert len(acks) >= 60

    ledger = Ledger.open(store_url)
    try:
        stored = {e.seq: read_entry(e.data).hash for e in ledger.store.iter_all()}
        for seq, digest in acks.items():
            assert stored.get(seq) == digest, f"acknowledged entry #{seq} was lost"
        assert sorted(stored) == list(range(len(stored)))  # still gapless after the crash
        # and the ledger carries on where it stopped
        assert ledger.store.size() == len(stored)
    finally:
        ledger.close()
