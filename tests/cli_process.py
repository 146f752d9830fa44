"""Running `tagledger` as a person does: a process of its own, whose output is read as they would read it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_tagledger(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m ledger.cli args...` in its own session, without the caller's TAGLEDGER_* settings; killed with
    everything it started if it outlives `timeout` (a `serve` that did not refuse would run on)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGLEDGER_")}
    proc = subprocess.Popen([sys.executable, "-m", "ledger.cli", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
