"""bench/ never leaves a process behind (issue 13): a bench server runs in its own process group, and whatever
fails -- not ready in time, a worker ignoring SIGINT and SIGTERM, an exception in the bench -- the whole group is
stopped, SIGKILL after a grace period. Each test looks at /proc afterwards: no process of the group is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402  (bench/common.py)


def _survivors(pgid: int, pids: list[int]) -> list[int]:
    return sorted(set(common.group_members(pgid)) | {p for p in pids if common._alive(p)})


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bench.db'}"


def test_a_server_slow_to_start_that_ignores_signals_is_killed_with_its_workers(sqlite_url: str, tmp_path: Path) -> None:
    server = common.Server(sqlite_url, workers=2, access_log=False, ready_timeout=6, stop_grace=2,
                           log_file=tmp_path / "server.log",
                           env={"TAGLEDGER_BENCH_START_DELAY": "600", "TAGLEDGER_BENCH_IGNORE_SIGNALS": "1"})
    with pytest.raises(RuntimeError, match="not ready after 6 s"):
        server.__enter__()
    assert server.proc is not None
    seen = sorted(server._seen)
    assert len(seen) >= 3, seen  # uvicorn's supervisor and its two workers were running
    assert _survivors(server.proc.pid, seen) == []
    assert not server.home.exists()


def test_an_exception_in_the_bench_stops_the_whole_group(sqlite_url: str, tmp_path: Path) -> None:
    pids: list[int] = []
    with pytest.raises(ZeroDivisionError):
        with common.Server(sqlite_url, workers=2, access_log=False, stop_grace=2, log_file=tmp_path / "server.log",
                           env={"TAGLEDGER_BENCH_IGNORE_SIGNALS": "1"}) as server:
            pids = server.pids()
            assert len(pids) >= 3
            1 / 0  # noqa: B018
    assert server.proc is not None and server.proc.returncode is not None
    assert _survivors(server.proc.pid, pids) == []


def test_sigterm_to_the_bench_stops_its_server(sqlite_url: str, tmp_path: Path) -> None:
    """The bench itself gets SIGTERM (a harness stopping it): its server group goes too."""
    script = tmp_path / "bench_main.py"
    pidfile = tmp_path / "pids"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(ROOT / 'bench')!r})\n"
        "import common\n"
        f"with common.Server({sqlite_url!r}, workers=2, access_log=False, stop_grace=2) as server:\n"
        f"    open({str(pidfile)!r}, 'w').write(' '.join(map(str, [server.proc.pid, *server.pids()])))\n"
        "    time.sleep(600)\n"
    )
    bench = subprocess.Popen([sys.executable, str(script)], cwd=ROOT)
    try:
        deadline = time.monotonic() + common.READY_TIMEOUT
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            assert bench.poll() is None, "the bench script died before its server was ready"
            time.sleep(0.2)
        pgid, *pids = map(int, pidfile.read_text().split())
        assert len(pids) >= 3
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(timeout=60) != 0
        assert _survivors(pgid, pids) == []
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        if pidfile.exists() and pidfile.read_text():
            pgid = int(pidfile.read_text().split()[0])
            for pid in common.group_members(pgid):
                os.kill(pid, signal.SIGKILL)
