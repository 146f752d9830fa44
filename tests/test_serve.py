"""`tagledger serve` as a user runs it (`make serve`): a real process tree on a real port, on both stores.

The supervising process initialises the ledger on first use and follows the custody projection; HTTP requests
are answered by `--workers` worker processes. The tests record events over HTTP through the CLI, watch the
projection (kept by another process than the one that wrote) catch up, and stop the service with Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ledger.keys import KeyPair

ROOT = Path(__file__).resolve().parents[1]
SITE = "kalimbi-site"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_members(sid: int) -> list[int]:
    """Live processes of session `sid` (the service and everything it started)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":  # fields: state ppid pgrp session ...
                members.append(int(entry.name))
    return members


class Service:
    def __init__(self, home: Path, db: str | None, workers: int):
        self.home, self.port = home, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cli = [sys.executable, "-m", "ledger.cli", "--home", str(home), *(["--db", db] if db else [])]
        self.log = home.parent / "serve.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAGLEDGER_")}
        self.proc = subprocess.Popen([*self.cli, "serve", "--port", str(self.port), "--workers", str(workers)],
                                     cwd=ROOT, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.env = env

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}:\n{self.log.read_text()}"
            try:
                if httpx.get(self.url + "/healthz", timeout=1, trust_env=False).is_success:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve did not answer in {timeout} s:\n{self.log.read_text()}")

    def run(self, *args: str | int) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*self.cli, *map(str, args)], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, f"tagledger {args} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, trust_env=False)

    def stop(self) -> int:
        """Ctrl-C, as a user stops it: the whole process group gets SIGINT."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        finally:
            for pid in _session_members(self.proc.pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    db = request.getfixturevalue("fresh_pg_url") if request.param == "postgres" else None
    svc = Service(tmp_path / "home", db, workers=2)
    try:
        svc.wait_ready()
        yield svc
    finally:
        svc.stop()


def test_serve_initialises_records_projects_and_stops_cleanly(service: Service, tmp_path: Path) -> None:
    # first use: `serve` created the ledger (genesis entry #0) and the operator's root key in the home
    assert service.get("/healthz").json()["entries"] == 1
    assert (service.home / "keys" / "itsci.pem").exists()

    # the operator registers a site and issues it tags; the site attaches and voids one, all over HTTP
    key = tmp_path / "site.pem"
    KeyPair.generate().save(key)
    url = ["--url", service.url]
    service.run("org", "register", SITE, "--name", "Kalimbi", "--role", "site", "--country", "CD",
                f"--public-key={KeyPair.load(key).public_key}", *url)
    service.run("tags", "issue", SITE, "--prefix", "KAL-", "--count", 3, "--width", 6, *url)
    site = ["--org", SITE, "--key", key, *url]
    service.run("record", "attach", "KAL-000001", *site, "--mineral", "tin", "--mass-g", 8_000, "--pit", "Pit 1")
    service.run("record", "void", "KAL-000002", *site, "--reason", "damaged")
    assert service.get("/healthz").json()["entries"] == 5

    # the projection is kept by the supervising process, not by the workers that wrote: it catches up
    deadline = time.monotonic() + 30
    while (stats := service.get("/v1/stats").json())["projection_position"] < 5:
        assert time.monotonic() < deadline, f"the projection did not catch up: {stats}"
        time.sleep(0.1)
    assert stats["tags_by_status"] == {"in_custody": 1, "issued": 1, "voided": 1}
    listed = service.get(f"/v1/tags?holder={SITE}").json()
    assert [t["tag"] for t in listed["tags"]] == ["KAL-000001"]
    assert service.get("/v1/tags/KAL-000001").json()["state"]["holder"] == SITE

    # Ctrl-C stops the supervisor and its workers, and leaves no process behind
    assert service.stop() == 0
    assert _session_members(service.proc.pid) == []


def test_serve_refuses_a_bad_worker_count(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ledger.cli", "--home", str(tmp_path), "serve", "--workers", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not a positive integer" in done.stderr
    assert not (tmp_path / "tagledger.json").exists()  # refused before anything was created
