"""Public reads from a real PostgreSQL hot standby (issue 14): `serve --read-db`, read-your-writes, failover of reads.

One primary and its hot standby per module (tests/pg_replication.py: `initdb`, `pg_basebackup -R`, `pg_ctl` on
loopback ports, removed afterwards), one ledger on the primary served in-process with a `ReadRouter` whose replica
is the standby. Writes go to the primary over HTTP; the tests read over HTTP and look at where each answer came
from (`X-Read-From`) and what it reflects (`X-Log-Size`). The standby's replay is paused (`pg_wal_replay_pause`)
to make it lag for real, and the standby is stopped and started again. The restore drill of docs/deployment.md
runs here too, on the same primary (its WAL is archived): base backup, point-in-time recovery, check and audit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eventsourcing.persistence import PersistenceError

from api.app import create_app
from ledger.client import HttpTransport, LedgerClient, Signer
from ledger.genesis import GenesisKeys, create_ledger, key_paths
from ledger.keys import KeyPair
from ledger.replicas import ReadRouter, open_replica_ledger
from ledger.service import Ledger
from tests.integration.conftest import OPERATOR, LiveLedger, ServerThread, http_client
from tests.integration.pg_cut import CuttingProxy
from tests.integration.test_http_log import check_tag_proofs
from tests.cli_process import run_tagledger
from tests.pg_replication import (Cluster, Pair, archive_current_wal, base_backup, free_port, primary_and_standby,
                                  restore)
from verification.encoding import format_time
from verification.note import NoteVerifier
from verification.sealed_details import commitment, new_details

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[1]
SITE, COOP, MONITOR = "kalimbi-site", "nyabibwe-coop", "monitor-ngo"
WAIT = 30.0  # seconds: every wait for a condition gives up after this (no test asserts a duration)


@dataclass
class Replicated:
    pair: Pair
    live: LiveLedger
    router: ReadRouter
    verifier: NoteVerifier


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with primary_and_standby() as created:
        yield created


@pytest.fixture(scope="module")
def replicated(pair: Pair) -> Iterator[Replicated]:
    """A ledger on the primary, served with the standby as its read replica; a small world recorded in it."""
    ledger = Ledger.open(pair.primary.url())
    root, log_key = KeyPair.generate(), KeyPair.generate()
    router = server = live = None
    try:
        create_ledger(ledger, name="replicated", operator=OPERATOR, operator_name="ITSCI programme", country="CD",
                      log_key_name="tagledger.test/replicated/log", keys=GenesisKeys(root, log_key))
        router = ReadRouter(ledger, [pair.standby.url()], max_lag=30, probe_seconds=0.1)
        server = ServerThread(create_app(ledger, log_key=log_key, read_router=router))
        server.start()
        http = http_client(server.url)
        live = LiveLedger(url=server.url, ledger=ledger, root=root, operator=None, http=http,  # type: ignore[arg-type]
                          log_key=log_key)
        live._clients.append(http)
        live.operator = live.client_for(OPERATOR, root)
        site = live.register(SITE, "site", name="Kalimbi mine site")
        coop = live.register(COOP, "cooperative")
        monitor = live.register(MONITOR, "monitor")
        live.operator.issue_tags(SITE, prefix="KAL-", start=1, count=20, width=6)
        site.attach("KAL-000001", mineral="tin", ore="cassiterite", mass_g=10_000, pit="Pit 7")
        site.dispatch("KAL-000001", COOP, location="road N2")
        coop.receive("KAL-000001", mass_g=9_950, location="warehouse")
        monitor.report_incident("INC-0001", site=SITE, category="health_safety", severity="low",
                                occurred_at=format_time(ledger.view_time()),
                                details_sha256=commitment(new_details("a loose ladder")))
        yield Replicated(pair, live, router, log_key_verifier(ledger))
    finally:
        if live is not None:
            live.close_clients()
        if server is not None:
            server.stop()
        if router is not None:
            router.close()
        ledger.close()


def log_key_verifier(ledger: Ledger) -> NoteVerifier:
    return ledger.identity().verifier


def wait_for(what: str, condition: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout} s")
        time.sleep(0.05)


def source(response: httpx.Response) -> str:
    return response.headers.get("x-read-from", "")


def log_size(response: httpx.Response) -> int:
    return int(response.headers["x-log-size"])


def from_replica(live: LiveLedger, path: str, **params: Any) -> httpx.Response:
    """GET `path` until the replica answers it (it is in the rotation and holds what `params` ask)."""
    def attempt() -> httpx.Response | None:
        response = live.http.get(path, params=params)
        assert response.status_code < 500, (path, response.status_code, response.text[:300])
        return response if source(response) == "replica:1" else None
    return wait_for(f"the replica to answer {path}", attempt)


def caught_up(r: Replicated) -> None:
    """The standby has replayed everything, and the router has seen it."""
    r.pair.wait_replayed()
    size = r.live.ledger.store.size()
    from_replica(r.live, "/v1/log/checkpoint", min_seq=size - 1)


# ------------------------------------------------------------------------------------------------
# Reads from the replica
# ------------------------------------------------------------------------------------------------


def test_tag_view_from_the_replica_with_proofs_that_verify(replicated: Replicated) -> None:
    live = replicated.live
    caught_up(replicated)

    def proven() -> httpx.Response | None:
        response = from_replica(live, "/v1/tags/KAL-000001")
        document = response.json()
        _, unproven = check_tag_proofs(document, replicated.verifier)  # signed by the primary, read on the replica
        return response if not unproven else None

    response = wait_for("a replica checkpoint covering the tag's events", proven)
    document = response.json()
    assert [e["type"] for e in document["events"]] == [
        "tags_issued", "tag_attached", "custody_dispatched", "custody_received"]
    assert document["verdict"]["authentic"] is True and document["problems"] == []
    assert document["state"]["holder"] == COOP
    assert log_size(response) > max(e["seq"] for e in document["events"])
    # the checkpoint the replica serves is one the primary signed: the same bytes at that size
    note = from_replica(live, "/v1/log/checkpoint")
    assert note.text in {c.note for c in live.ledger.store.checkpoints()}
    # the replica's entries and proofs are the primary's
    entries = from_replica(live, "/v1/log/entries", start=0, end=3)
    assert entries.content.split(b"\n")[:3] == [e.data for e in live.ledger.store.read_range(0, 3)]
    tile = from_replica(live, "/tiles/checkpoint")
    assert tile.text in {c.note for c in live.ledger.store.checkpoints()}


def test_every_public_read_is_answered_by_the_read_only_replica(replicated: Replicated) -> None:
    """Every GET of the API (its OpenAPI document) and the page, from the standby, none failing there: nothing a
    public read does writes (a standby would refuse it, and the router count it as a failure)."""
    live, router = replicated.live, replicated.router
    caught_up(replicated)
    failures = sum(s["failures"] for s in router.status())
    values = {"tag_id": "KAL-000001", "stream": "tag:KAL-000001", "org_id": SITE, "site_id": SITE,
              "incident_id": "INC-0001", "level": "0", "path": "000", "sha256": "ab" * 32}
    paths = ["/t/KAL-000001", "/t/KAL-000001?lang=fr", "/v1/tags?status=in_custody", "/v1/projection",
             "/v1/log/proof/inclusion?index=1&size=2", "/v1/log/proof/consistency?old=1&new=2",
             "/v1/log/leaf-hashes?start=0", "/v1/labels/sheet.svg?prefix=KAL-&start=1&count=2",
             "/v1/epcis/events?MATCH_anyEPC=KAL-000001", "/tiles/tile/0/000.p/1", "/tiles/tile/entries/000.p/1"]
    for path, item in live.http.get("/openapi.json").json()["paths"].items():
        if "get" in item:
            for name, value in values.items():
                path = path.replace("{" + name + "}", value)
            paths.append(path)
    routed = 0
    for path in paths:
        response = live.http.get(path)
        assert response.status_code < 500, (path, response.status_code, response.text[:300])
        if path.startswith(("/v1/streams/", "/v1/orgs", "/v1/ledger")):  # read to sign: always the primary
            assert "x-read-from" not in response.headers, path
            continue
        routed += 1
        assert source(response) == "replica:1", (path, response.status_code, response.headers)
    assert routed >= 25
    assert sum(s["failures"] for s in router.status()) == failures, router.status()


def test_signed_reads_and_writes_go_to_the_primary(replicated: Replicated) -> None:
    live = replicated.live
    caught_up(replicated)
    # a signed read (sealed details) is never routed: the primary answers, without the routing headers
    response = live.http.get("/v1/incidents/INC-0001", headers={"Authorization": "Tagledger-Signature garbage"})
    assert response.status_code in (400, 401) and "x-read-from" not in response.headers
    assert "x-read-from" not in live.http.get("/v1/streams/tag:KAL-000001/head").headers
    receipt = live.orgs[SITE].client.scan("KAL-000002", gps={"lat": "-1.5", "lon": "28.9"})
    assert receipt["seq"] == live.ledger.store.size() - 1  # recorded on the primary
    # a replica's Ledger writes nothing, and its connections could not (READ ONLY transactions)
    replica = open_replica_ledger(replicated.pair.standby.url())
    try:
        with pytest.raises(RuntimeError):
            replica.submit({})
        with pytest.raises(PersistenceError), replica.store.write_session():
            pass
        with pytest.raises(PersistenceError, match="read-only"), \
                replica.store.datastore.transaction(commit=True) as curs:  # type: ignore[attr-defined]
            curs.execute("CREATE TABLE nothing_here (i int)")
    finally:
        replica.close()


# ------------------------------------------------------------------------------------------------
# Read-your-writes
# ------------------------------------------------------------------------------------------------


def test_read_your_writes_while_the_replica_lags(replicated: Replicated) -> None:
    live, pair = replicated.live, replicated.pair
    caught_up(replicated)
    site = live.orgs[SITE].client
    pair.pause_replay()
    try:
        receipt = site.attach("KAL-000003", mineral="tin", mass_g=8_000, pit="Pit 2")
        seq = receipt["seq"]
        # without min_seq: the lagging replica answers, and says honestly what it reflects
        stale = live.http.get("/v1/tags/KAL-000003")
        assert source(stale) == "replica:1" and stale.status_code == 200
        assert log_size(stale) <= seq
        assert "X-Min-Seq" in stale.headers.get_list("vary")
        assert [e["type"] for e in stale.json()["events"]] == ["tags_issued"]
        # with min_seq (parameter or header): a store holding the write answers
        for fresh in (live.http.get("/v1/tags/KAL-000003", params={"min_seq": seq}),
                      live.http.get("/v1/tags/KAL-000003", headers={"X-Min-Seq": str(seq)}),
                      live.http.get("/t/KAL-000003", params={"min_seq": seq})):
            assert fresh.status_code == 200 and source(fresh) == "primary", fresh.headers
            assert log_size(fresh) > seq
        assert fresh.text.count("Pit 2") >= 1
        assert [e["type"] for e in live.http.get("/v1/tags/KAL-000003", params={"min_seq": seq}).json()["events"]] \
            == ["tags_issued", "tag_attached"]
        # the project's client asks for its own writes by itself
        assert site.transport.min_seq == seq
        document = site.transport.tag("KAL-000003")
        assert document is not None and document["state"]["status"] == "in_custody"
        # a position beyond the log is bad input, not a reason to wait
        beyond = live.http.get("/v1/tags/KAL-000003", params={"min_seq": seq + 1000})
        assert beyond.status_code == 400 and beyond.json()["rule"] == "log.range"
        for bad in ("-1", "x", "", "1e3", "9" * 30):
            refused = live.http.get("/v1/log/checkpoint", params={"min_seq": bad})
            assert refused.status_code == 400 and refused.json()["field"] == "/min_seq", (bad, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
    finally:
        pair.resume_replay()
    # once replayed, the replica answers the same min_seq again
    response = from_replica(live, "/v1/tags/KAL-000003", min_seq=seq)
    assert [e["type"] for e in response.json()["events"]] == ["tags_issued", "tag_attached"]


def test_min_seq_no_store_can_show_is_503_never_stale(replicated: Replicated) -> None:
    """The primary unreachable (a proxy in front of it, closed) and the replica behind: 503 `read.stale` with
    `Retry-After` for a read that asks for the missing entry; reads that ask nothing are still served."""
    live, pair = replicated.live, replicated.pair
    caught_up(replicated)
    proxy = CuttingProxy(pair.primary.url())
    ledger = Ledger.open(proxy.url)
    router = ReadRouter(ledger, [pair.standby.url()], max_lag=30, probe_seconds=0.1)
    server = ServerThread(create_app(ledger, follow_projection=False, read_router=router))
    try:
        server.start()
        with http_client(server.url) as http:
            wait_for("the second server's replica", lambda: source(http.get("/v1/log/checkpoint")) == "replica:1")
            pair.pause_replay()
            try:
                seq = live.orgs[SITE].client.attach("KAL-000004", mineral="tin", mass_g=7_000, pit="P3")["seq"]
                proxy.refusing = True  # the second server's primary is gone: no new connection ...
                proxy.close()  # ... and none of the open ones
                stale = http.get("/v1/tags/KAL-000004", params={"min_seq": seq})
                assert stale.status_code == 503, stale.text
                assert stale.json()["rule"] == "read.stale" and stale.headers["retry-after"] == "1"
                page = http.get("/t/KAL-000004", params={"min_seq": seq})
                assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
                served = http.get("/v1/tags/KAL-000004")
                assert served.status_code == 200 and source(served) == "replica:1" and log_size(served) <= seq
            finally:
                pair.resume_replay()
            answered = wait_for("the replica to replay the write",
                                lambda: (r := http.get("/v1/tags/KAL-000004", params={"min_seq": seq})).status_code
                                == 200 and r)
            assert source(answered) == "replica:1"
    finally:
        server.stop()
        router.close()
        ledger.close()
        proxy.close()


# ------------------------------------------------------------------------------------------------
# Taken out, and back
# ------------------------------------------------------------------------------------------------


def test_a_lagging_replica_is_taken_out_and_comes_back(replicated: Replicated) -> None:
    live, pair, router = replicated.live, replicated.pair, replicated.router
    caught_up(replicated)
    router.max_lag = 1.0
    pair.pause_replay()
    try:
        live.orgs[SITE].client.attach("KAL-000005", mineral="tin", mass_g=6_000, pit="P4")
        wait_for("reads to move to the primary", lambda: source(live.http.get("/v1/log/checkpoint")) == "primary")
        [replica] = [s for s in router.status() if s["name"] == "replica:1"]
        assert not replica["in_rotation"] and replica["reason"].startswith("lags"), replica
        # the primary answers everything meanwhile, fresh
        answer = live.http.get("/v1/tags/KAL-000005")
        assert source(answer) == "primary" and answer.json()["state"]["status"] == "in_custody"
    finally:
        pair.resume_replay()
        router.max_lag = 30
    from_replica(live, "/v1/tags/KAL-000005")


def test_serve_with_read_db(pair: Pair, tmp_path: Path) -> None:
    """`tagledger serve --read-db`, the command itself: its workers read from the standby."""
    with pair.primary.connect("postgres") as conn:
        conn.execute("CREATE DATABASE served")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGLEDGER_")}
    cli = [sys.executable, "-m", "ledger.cli", "--home", str(tmp_path / "home"), "--db", pair.primary.url("served")]
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([*cli, "serve", "--port", str(port), "--read-db", pair.standby.url("served"),
                             "--read-max-lag", "30"], cwd=ROOT, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        with http_client(url, timeout=5) as http:
            def up() -> bool:
                assert proc.poll() is None, log.read_text()
                try:
                    return http.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False
            wait_for("serve to answer", up, timeout=90)
            root_key, _ = key_paths(tmp_path / "home", OPERATOR)  # `serve` created the ledger (and its keys)
            operator = LedgerClient(HttpTransport(url, client=http), Signer(OPERATOR, KeyPair.load(root_key)))
            operator.register_org("srv-site", "Served site", "site", "CD", [KeyPair.generate().public_key])
            seq = operator.issue_tags("srv-site", prefix="SRV-", start=1, count=3)["seq"]
            assert operator.transport.min_seq == seq
            # the client's own read: a store that holds its write answers it (the primary, or a replica)
            assert operator.transport.tag("SRV-000002")["verdict"]["code"] == "issued"
            answer = wait_for("the replica to answer",
                              lambda: (r := http.get("/v1/tags/SRV-000002")).status_code == 200
                              and source(r) == "replica:1" and r)
            assert answer.json()["verdict"]["code"] == "issued"
            assert "public reads from 1 replica(s)" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with pair.primary.connect("postgres") as conn:
            conn.execute("DROP DATABASE IF EXISTS served WITH (FORCE)")


def test_routers_refuse_a_store_that_is_not_a_standby_of_this_ledger(replicated: Replicated) -> None:
    pair, ledger = replicated.pair, replicated.live.ledger
    with pair.primary.connect("postgres") as conn:
        conn.execute("CREATE DATABASE other")
    other = Ledger.open(pair.primary.url("other"))
    try:
        create_ledger(other, name="other", operator=OPERATOR, operator_name="Someone else", country="CD",
                      log_key_name="tagledger.test/other/log", keys=GenesisKeys(KeyPair.generate(), KeyPair.generate()))
        pair.wait_replayed()
        router = ReadRouter(ledger, [pair.primary.url(), pair.standby.url("other")])
        try:
            router.probe()
            reasons = {s["name"]: s["reason"] for s in router.status()}
            assert reasons["replica:1"].startswith("not a hot standby"), reasons
            assert reasons["replica:2"].startswith("not a copy of this ledger"), reasons
            assert router.choose().name == "primary"
        finally:
            router.close()
    finally:
        other.close()
        with pair.primary.connect("postgres") as conn:
            conn.execute("DROP DATABASE IF EXISTS other WITH (FORCE)")


def test_restore_drill_from_a_base_backup_and_the_wal_archive_ends_in_a_passing_audit(replicated: Replicated,
                                                                                      tmp_path: Path) -> None:
    """docs/deployment.md's restore drill, for real: an auditor audits the live ledger; a base backup is taken
    (`pg_basebackup`), more custody is recorded, its WAL archived; the backup is restored into a new cluster with
    the archive (point-in-time recovery to the end of the archive); the restored store passes `tagledger check`,
    holds every entry acknowledged before the archived point, and `tagledger audit`, with the auditor's state
    from before (its pinned key and kept checkpoint), passes against it."""
    live, pair = replicated.live, replicated.pair
    state = tmp_path / "auditor"
    vkey = live.http.get("/v1/log/key").json()["vkey"]
    before = run_tagledger("audit", live.url, "--vkey", vkey, "--state-dir", str(state), "--no-progress")
    assert before.returncode == 0, before.stdout + before.stderr
    backup = pair.root / "backup"
    base_backup(pair.primary, backup)
    try:
        site = live.orgs[SITE].client
        acknowledged = [site.attach(f"KAL-{n:06d}", mineral="tin", mass_g=5_000, pit="P9")["seq"] for n in (10, 11)]
        wait_for("a checkpoint covering them", lambda: (c := live.ledger.store.latest_checkpoint()) is not None
                 and c.size > max(acknowledged))
        archive_current_wal(pair.primary)
        restored = Cluster("restored", pair.root / "restored", free_port(), pair.root)
        try:
            restore(backup, pair.archive, restored)
            check = run_tagledger("--db", restored.url(), "check", "--quiet")
            assert check.returncode == 0 and check.stdout.startswith("OK"), check.stdout + check.stderr
            ledger = Ledger.open(restored.url())
            try:
                assert ledger.store.size() > max(acknowledged)
                assert [e.data for e in ledger.store.read_range(0, max(acknowledged) + 1)] == \
                    [e.data for e in live.ledger.store.read_range(0, max(acknowledged) + 1)]
                with ServerThread(create_app(ledger)) as server:
                    after = run_tagledger("audit", server.url, "--vkey", vkey, "--state-dir", str(state),
                                          "--no-progress")
                assert after.returncode == 0, after.stdout + after.stderr
                assert after.stdout.rstrip().endswith("RESULT: OK"), after.stdout
                assert "reproduce the kept checkpoint's root" in after.stdout, after.stdout  # the one from before
            finally:
                ledger.close()
        finally:
            restored.stop("immediate")
            shutil.rmtree(restored.data, ignore_errors=True)
    finally:
        shutil.rmtree(backup, ignore_errors=True)


def test_a_stopped_replica_is_taken_out_and_reads_move_to_the_primary(replicated: Replicated) -> None:
    live, pair, router = replicated.live, replicated.pair, replicated.router
    caught_up(replicated)
    pair.standby.stop("fast")
    try:
        # every read is answered, none with an error: the first ones that reach the dead replica are served again
        # by the primary, and the replica is out
        answers = [live.http.get("/v1/tags/KAL-000001") for _ in range(5)]
        assert [a.status_code for a in answers] == [200] * 5, [a.text[:200] for a in answers]
        assert source(answers[-1]) == "primary"
        [replica] = [s for s in router.status() if s["name"] == "replica:1"]
        assert not replica["in_rotation"] and replica["reason"].startswith("failed"), replica
        assert all(a.json()["verdict"]["authentic"] for a in answers)
    finally:
        pair.standby.start()
    # started again, it is found answering and taken back
    from_replica(live, "/v1/tags/KAL-000001")
