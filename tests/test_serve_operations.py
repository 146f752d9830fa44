"""`tagledger serve` as an operator runs it, stopped the ways services are stopped (issue 11, parts 4 and 7).

Real process trees on real ports, on both stores: the supervisor killed alone with SIGKILL (its workers must go
with it, and a new `serve` must start on the same port and take writes that an audit accepts), SIGTERM while
writes are in flight (every request sent gets its answer, every 201 is in the log), metrics that agree across
workers and survive their replacement, and a server without the log key (writes refused once entries wait too
long for a checkpoint). No test measures time: deadlines only bound how long a test may wait for something.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ledger.client import HttpTransport, LedgerClient, Signer
from ledger.config import load_settings
from ledger.entries import read_entry
from ledger.keys import KeyPair
from ledger.service import Ledger
from tests.test_serve import ROOT, _free_port, _session_members

SITE = "kalimbi-site"
WAIT = 60.0  # the longest any step may take before the test gives up (not a measurement)


class Serve:
    """`tagledger serve` in a session of its own (so that everything it starts can be found and killed)."""

    def __init__(self, home: Path, db: str | None, *, workers: int = 2, port: int | None = None, args: tuple = ()):
        self.home, self.db, self.port = home, db, port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cli = [sys.executable, "-m", "ledger.cli", "--home", str(home), *(["--db", db] if db else [])]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TAGLEDGER_")}
        self.log = home.parent / f"serve-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen([*self.cli, "serve", "--port", str(self.port), "--workers", str(workers), *args],
                                     cwd=ROOT, env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.sid = self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, workers: int = 2) -> None:
        """Until /readyz answers 200 and this supervisor has its workers (not some other process's answer)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}:\n{self.output()}"
            try:
                ready = httpx.get(self.url + "/readyz", timeout=2, trust_env=False).status_code == 200
            except httpx.TransportError:
                ready = False
            if ready and len(self.workers()) >= workers:
                return
            time.sleep(0.1)
        raise AssertionError(f"serve was not ready within {WAIT:.0f} s:\n{self.output()}")

    def workers(self) -> list[int]:
        """The supervisor's worker processes (its children running the HTTP server)."""
        found = []
        for pid in _session_members(self.sid):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == self.proc.pid and b"spawn_main" in cmdline:
                found.append(pid)
        return found

    def run(self, *args: str | int) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.cli, *map(str, args)], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=120)

    def kill_all(self) -> None:
        for pid in _session_members(self.sid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("fresh_pg_url") if request.param == "postgres" else None


@pytest.fixture
def services() -> Iterator[list[Serve]]:
    """Every `Serve` a test starts goes in here; whatever happens, none outlives the test."""
    started: list[Serve] = []
    try:
        yield started
    finally:
        for serve in started:
            serve.kill_all()


def _operator(serve: Serve) -> LedgerClient:
    settings = load_settings(str(serve.home), serve.db)
    root = KeyPair.load(serve.home / "keys" / f"{settings.operator}.pem")
    return LedgerClient(HttpTransport(serve.url), Signer(settings.operator, root))


def _site(serve: Serve, tags: int) -> tuple[LedgerClient, str]:
    """Register a site over HTTP and issue it `tags` tags KAL-000001...; return its client and the issuance hash."""
    operator = _operator(serve)
    keys = KeyPair.generate()
    operator.register_org(SITE, "Kalimbi", "site", "CD", [keys.public_key])
    issued = operator.issue_tags(SITE, prefix="KAL-", start=1, count=tags)
    return LedgerClient(HttpTransport(serve.url), Signer(SITE, keys)), issued["hash"]


def _gone(pids: list[int]) -> list[int]:
    """Wait (bounded) for `pids` to exit; return those still alive."""
    deadline = time.monotonic() + WAIT
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if Path(f"/proc/{pid}").exists() and
                 Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    return alive


# --- part 4: kill -9 of the supervisor alone ----------------------------------------------------------------------


def test_killing_the_supervisor_alone_stops_its_workers_and_a_restart_serves_at_once(
        db: str | None, tmp_path: Path, services: list[Serve]) -> None:
    first = Serve(tmp_path / "home", db)
    services.append(first)
    first.wait_ready()
    site, _ = _site(first, tags=3)
    site.attach("KAL-000001", mineral="tin", mass_g=8_000, pit="P1")
    workers = first.workers()
    assert len(workers) == 2

    os.kill(first.proc.pid, signal.SIGKILL)  # the supervisor alone, as a service manager or a person would
    first.proc.wait(timeout=10)
    orphans = _gone(workers)
    assert orphans == [], f"workers {orphans} still serve after their supervisor was killed"

    second = Serve(tmp_path / "home", db, port=first.port)  # same home, same port, at once
    services.append(second)
    second.wait_ready()
    site = LedgerClient(HttpTransport(second.url), site.signer)
    receipt = site.attach("KAL-000002", mineral="tin", mass_g=9_000, pit="P2")
    entries = receipt["seq"] + 1
    deadline = time.monotonic() + WAIT  # the new supervisor signs a checkpoint covering it
    while int(httpx.get(second.url + "/v1/log/checkpoint", trust_env=False).text.split("\n")[1]) < entries:
        assert time.monotonic() < deadline, "no checkpoint covers the new entry"
        time.sleep(0.2)

    audit = second.run("audit", second.url, "--no-state", "--workers", "0")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert f"{entries} entries" in audit.stdout or str(entries) in audit.stdout, audit.stdout


# --- part 7: SIGTERM drains --------------------------------------------------------------------------------------


def test_sigterm_answers_every_write_in_flight(db: str | None, tmp_path: Path, services: list[Serve]) -> None:
    serve = Serve(tmp_path / "home", db)
    services.append(serve)
    serve.wait_ready()
    site, issued = _site(serve, tags=4_000)
    writers, per_writer = 8, 500
    outcomes: list[tuple[str, Any, float, float]] = []  # (kind, detail, sent, answered), times from monotonic
    lock = threading.Lock()
    done = threading.Event()
    in_flight = [0]

    def write(k: int) -> None:
        # no keep-alive: a connection per request, so the server never closes an idle connection under a request
        with httpx.Client(trust_env=False, timeout=WAIT, limits=httpx.Limits(max_keepalive_connections=0)) as http:
            for n in range(per_writer):
                if done.is_set():
                    return
                envelope = site.signer.envelope("tag_attached", f"tag:KAL-{k * per_writer + n + 1:06d}", issued,
                                                {"site": SITE, "mineral": "tin", "mass_g": 1_000, "pit": "P1"})
                with lock:
                    in_flight[0] += 1
                sent = time.monotonic()
                try:
                    answer = http.post(serve.url + "/v1/events", json=envelope)
                    outcome: tuple[str, Any] = ("answered", (answer.status_code, answer.json(), envelope))
                except httpx.ConnectError:
                    outcome = ("refused", None)  # never connected: nothing was sent
                except httpx.HTTPError as error:
                    outcome = ("unanswered", f"{type(error).__name__}: {error}")
                with lock:
                    in_flight[0] -= 1
                    outcomes.append((*outcome, sent, time.monotonic()))
                if outcome[0] == "refused":
                    time.sleep(0.05)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + WAIT
        while sum(1 for o in outcomes if o[0] == "answered") < 40 or in_flight[0] < writers // 2:  # writes flow
            assert time.monotonic() < deadline, f"writes did not flow:\n{serve.output()}"
            time.sleep(0.001)
        signalled = time.monotonic()
        serve.proc.send_signal(signal.SIGTERM)  # what a service manager sends
        assert serve.proc.wait(timeout=WAIT + 70) == 0, serve.output()
        time.sleep(0.5)  # the writers meet the closed port
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=WAIT)

    unanswered = [o for o in outcomes if o[0] == "unanswered"]
    assert unanswered == [], f"{len(unanswered)} requests were sent and never answered: {unanswered[:5]}"
    answered = [o for o in outcomes if o[0] == "answered"]
    assert {o[1][0] for o in answered} == {201}, [o[1][1] for o in answered if o[1][0] != 201][:3]
    assert any(sent < signalled < got for _, _, sent, got in answered), "no write was in flight at SIGTERM"
    assert _session_members(serve.sid) == [], "a process outlived the stop"
    ledger = Ledger.open(load_settings(str(serve.home), db).db)
    try:
        for _, (status, receipt, envelope), _, _ in answered:
            stored = ledger.store.read_range(receipt["seq"], receipt["seq"] + 1)
            assert stored, f"acknowledged entry #{receipt['seq']} is not in the log"
            entry = read_entry(stored[0].data)
            assert (entry.hash, entry.body["id"]) == (receipt["hash"], envelope["body"]["id"])
    finally:
        ledger.close()


# --- part 7: metrics across workers ------------------------------------------------------------------------------


def _accepted(serve: Serve) -> float:
    with httpx.Client(trust_env=False, timeout=10) as http:  # a new connection: any worker may answer
        text = http.get(serve.url + "/metrics", headers={"Connection": "close"}).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tagledger_events_accepted_total":
                return sample.value
    raise AssertionError(f"no tagledger_events_accepted_total in:\n{text}")


def test_metrics_agree_across_workers_and_survive_their_replacement(tmp_path: Path, services: list[Serve]) -> None:
    serve = Serve(tmp_path / "home", None)
    services.append(serve)
    serve.wait_ready()
    site, _ = _site(serve, tags=5)
    for n in range(1, 4):
        site.attach(f"KAL-{n:06d}", mineral="tin", mass_g=1_000 * n, pit="P1")
    written = 5  # the registration, the issuance, three attachments
    assert [_accepted(serve) for _ in range(8)] == [written] * 8

    counted = serve.workers()
    for worker in counted:  # replace every worker that counted them, one after the other
        os.kill(worker, signal.SIGKILL)
        assert _gone([worker]) == []
        serve.wait_ready()
    assert not set(serve.workers()) & set(counted)  # none of those that counted is left
    assert [_accepted(serve) for _ in range(8)] == [written] * 8, "a counter reset when its worker was replaced"


# --- part 4: the write rule without a log key --------------------------------------------------------------------


def test_a_server_without_the_log_key_refuses_writes_once_entries_wait_too_long(
        tmp_path: Path, services: list[Serve]) -> None:
    home = tmp_path / "home"
    signing = Serve(home, None)  # first with the key: it signs a checkpoint of the genesis entry
    services.append(signing)
    signing.wait_ready()
    site, issued = _site(signing, tags=5)
    deadline = time.monotonic() + WAIT
    while httpx.get(signing.url + "/readyz", trust_env=False).json()["checks"]["checkpoint"]["unsigned_seconds"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    signing.proc.send_signal(signal.SIGTERM)
    assert signing.proc.wait(timeout=WAIT + 70) == 0
    (home / "keys" / "log.pem").unlink()

    keyless = Serve(home, None, args=("--checkpoint-bound", "2"))
    services.append(keyless)
    keyless.wait_ready()
    assert "log.checkpoint_stale" in keyless.output()  # it says so when it starts
    site = LedgerClient(HttpTransport(keyless.url), site.signer)
    site.attach("KAL-000001", mineral="tin", mass_g=1_000, pit="P1")  # a quiet, signed ledger takes writes
    deadline = time.monotonic() + WAIT
    while (ready := httpx.get(keyless.url + "/readyz", trust_env=False)).status_code == 200:
        assert time.monotonic() < deadline, "the server never noticed that nobody signs"
        time.sleep(0.2)
    assert ready.json()["checks"]["checkpoint"]["ok"] is False
    envelope = site.signer.envelope("tag_attached", "tag:KAL-000002", issued,
                                    {"site": SITE, "mineral": "tin", "mass_g": 1_000, "pit": "P1"})
    refused = httpx.post(keyless.url + "/v1/events", json=envelope, trust_env=False)
    assert refused.status_code == 503 and refused.json()["rule"] == "log.checkpoint_stale"
    assert refused.headers["retry-after"] == "1"


# --- part 4: a restart does not fail on a port still held ----------------------------------------------------------


def test_serve_waits_for_the_port_then_serves(tmp_path: Path, services: list[Serve]) -> None:
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        serve = Serve(tmp_path / "home", None, port=port)
        services.append(serve)
        deadline = time.monotonic() + WAIT
        while f"port {port} on 127.0.0.1 is in use: waiting" not in serve.output():
            assert serve.proc.poll() is None, f"serve gave up while the port was held:\n{serve.output()}"
            assert time.monotonic() < deadline, serve.output()
            time.sleep(0.1)
    finally:
        holder.close()  # the previous server lets go
    serve.wait_ready()


def test_bind_socket_says_in_one_line_that_the_port_stays_in_use() -> None:
    from ledger.supervision import PortInUse, bind_socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUse) as caught:
            bind_socket("127.0.0.1", port, wait=0.3)
    assert str(caught.value.strerror) == (f"port {port} on 127.0.0.1 is in use by another program (waited 0.3 s): "
                                          "stop it or choose another --port")
