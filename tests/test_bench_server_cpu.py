"""bench/common.py `ServerCpu`: a server's CPU split by the role of each process, every process counted -- one
that ends during the measurement too (a restarted worker), from what its parent reaped (issue 13)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402  (bench/common.py)

# A "supervisor" (its command line names uvicorn) that starts a "worker" (multiprocessing's spawn_main in its
# command line) which burns CPU_SECONDS of CPU and ends; the supervisor reaps it, then waits to be told to end.
CPU_SECONDS = 0.6
WORKER = ("import time\nfrom multiprocessing.spawn import spawn_main\ntime.sleep(1)  # the meter starts meanwhile\n"
          f"t = time.process_time()\nwhile time.process_time() - t < {CPU_SECONDS}: pass\n")
SUPERVISOR = """
import os, subprocess, sys
subprocess.Popen([sys.executable, "-c", os.environ["WORKER_CODE"]]).wait()
sys.stdin.read()
"""


def test_a_worker_that_ended_is_counted_as_a_worker() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SUPERVISOR, "uvicorn"], stdin=subprocess.PIPE,
                            env={**os.environ, "WORKER_CODE": WORKER})
    try:
        deadline = time.monotonic() + 120
        while not common._direct_children(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        # no sample in between: the worker's CPU can only come from what the supervisor reaped
        meter = common.ServerCpu(lambda: proc.pid, interval=3600)
        meter.start()
        while common._direct_children(proc.pid) and time.monotonic() < deadline:  # until the worker has ended
            time.sleep(0.05)
        used = meter.stop()
    finally:
        proc.communicate(b"", timeout=30)
    assert meter._role[proc.pid] == "supervisor"
    assert used["workers_seen"] == 1 and used["exited"] == 1, used
    # all of the worker's CPU, not only what was sampled before it ended (clock ticks: 0.01 s)
    assert used["worker"] >= CPU_SECONDS - 0.02, used
    assert used["total"] == round(used["worker"] + used["supervisor"] + used["other"], 2)


def test_roles_from_command_lines() -> None:
    assert common.server_role(["/venv/bin/python", "-m", "ledger.cli", "--home", "h", "serve"]) == "supervisor"
    assert common.server_role(["python", "-m", "uvicorn", "--factory", "_serve:create_app"]) == "supervisor"
    assert common.server_role(["python", "-c", "from multiprocessing.spawn import spawn_main; spawn_main()",
                               "--multiprocessing-fork"]) == "worker"
    assert common.server_role(["python", "-c", "from multiprocessing.resource_tracker import main;main(6)"]) == "other"
    assert common.server_role(["/venv/bin/py-spy", "record", "--", "python", "-m", "ledger.cli"]) == "profiler"
