"""Reads never starve writes (issue 11, part 6; docs/protocol.md 8.1), over real HTTP on PostgreSQL.

The reads are held inside the store for real: the test's own connection takes an ACCESS EXCLUSIVE lock on the
checkpoints table, which every tag view reads and no write touches, so a tag view waits there until the test
lets go. Meanwhile:

* a write is recorded at once, even with every connection of the readers' pool taken;
* public reads beyond the limit are answered 503 `read.busy` with `Retry-After`, never queued without bound;
* while the writer is recording, fewer reads run (writes come first).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpx
import psycopg
import pytest

from api import read_limit
from api.app import create_app
from ledger.store.postgres import WRITER_LOCK
from tests.integration.conftest import ServerThread, http_client
from tests.ledger.world import World, make_world
from verification.canonical import jcs

pytestmark = pytest.mark.postgres
TAG = "KAL-000001"


@pytest.fixture
def served(fresh_pg_url: str) -> Iterator[tuple[World, ServerThread]]:
    world = make_world(fresh_pg_url, tags=10)
    try:
        with ServerThread(create_app(world.ledger, follow_projection=False)) as server:
            yield world, server
    finally:
        world.ledger.close()


@contextmanager
def reads_held(url: str) -> Iterator[None]:
    """Every tag view waits inside the store until the block ends."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute("LOCK TABLE tagledger_checkpoints IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()


def _attach(world: World, n: int) -> bytes:
    head = world.ledger.head(f"tag:KAL-{n:06d}")
    assert head is not None
    return jcs(world.signer("kalimbi").envelope(
        "tag_attached", f"tag:KAL-{n:06d}", head.hash,
        {"site": "kalimbi", "mineral": "tin", "mass_g": 40_000, "pit": "P1"}, time=world.tick()))


class Readers:
    """`n` concurrent GET `path`, each on its own connection and thread; their answers as they come."""

    def __init__(self, url: str, n: int, path: str = f"/v1/tags/{TAG}", headers: dict[str, str] | None = None):
        self.path, self.headers = path, headers or {}
        self.answers: list[httpx.Response] = []
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._threads = [threading.Thread(target=self._read, args=(url,)) for _ in range(n)]
        for thread in self._threads:
            thread.start()

    def _read(self, url: str) -> None:
        with http_client(url, timeout=60) as http:
            response = http.get(self.path, headers=self.headers)
        with self._done:
            self.answers.append(response)
            self._done.notify_all()

    def wait_for(self, count: int, timeout: float = 30) -> None:
        with self._done:
            assert self._done.wait_for(lambda: len(self.answers) >= count, timeout), \
                f"{len(self.answers)} of {count} answers"

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=60)

    def busy(self) -> list[httpx.Response]:
        return [r for r in self.answers if r.status_code == 503]


def _check_busy(answers: list[httpx.Response]) -> None:
    for response in answers:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["rule"] == "read.busy"
        assert int(response.headers["retry-after"]) >= 1


def test_a_write_is_recorded_while_reads_hold_every_pooled_connection(served, fresh_pg_url: str) -> None:
    world, server = served
    raw = _attach(world, 1)
    pool = world.ledger.store.datastore.pool
    taken = []
    try:
        while len(taken) < pool.max_size:  # every connection the readers could use
            taken.append(pool.getconn(timeout=10))
        with http_client(server.url) as http:
            response = http.post("/v1/events", content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 201, response.text
    finally:
        for conn in taken:
            pool.putconn(conn)


def test_reads_beyond_the_limit_are_turned_away_and_writes_go_on(served, fresh_pg_url: str) -> None:
    world, server = served
    raw = _attach(world, 2)
    slots, queue, n = read_limit.SLOTS, read_limit.QUEUE, read_limit.SLOTS + read_limit.QUEUE + 10
    readers = None
    try:
        with reads_held(fresh_pg_url):
            readers = Readers(server.url, n)
            readers.wait_for(n - slots)  # the rest, at once or after waiting their turn in the queue
            busy = readers.busy()
            assert len(busy) == n - slots
            _check_busy(busy)
            with http_client(server.url) as http:  # a write goes on while `slots` reads are held in the store
                response = http.post("/v1/events", content=raw, headers={"content-type": "application/json"})
            assert response.status_code == 201, response.text
            assert len(readers.answers) == n - slots, "the held reads finished before the write: nothing shown"
    finally:
        if readers is not None:
            readers.join()
    assert sorted(r.status_code for r in readers.answers) == [200] * slots + [503] * (n - slots)
    assert queue > 0  # some of the turned-away reads waited in the queue first


def test_while_the_writer_records_fewer_reads_run(served, fresh_pg_url: str) -> None:
    world, server = served
    raw = _attach(world, 3)
    n = read_limit.SLOTS + 4
    answers: list[Any] = []
    with psycopg.connect(fresh_pg_url, autocommit=True, connect_timeout=5) as blocker:
        blocker.execute("SELECT pg_advisory_lock(%s)", [WRITER_LOCK])  # the writer waits for it: it is recording
        post = threading.Thread(target=lambda: answers.append(_post(server.url, raw)))
        post.start()
        readers = None
        try:
            _wait(lambda: world.ledger.writer.idle_seconds() == 0)
            with reads_held(fresh_pg_url):
                readers = Readers(server.url, n)
                readers.wait_for(n - read_limit.SLOTS_WHILE_WRITING)
                _check_busy(readers.busy())
                assert len(readers.busy()) == n - read_limit.SLOTS_WHILE_WRITING
                blocker.execute("SELECT pg_advisory_unlock(%s)", [WRITER_LOCK])
                post.join(timeout=60)
        finally:
            if readers is not None:
                readers.join()
            with suppress(psycopg.Error):
                blocker.execute("SELECT pg_advisory_unlock_all()")
            post.join(timeout=60)
    assert answers and answers[0].status_code == 201, answers and answers[0].text
    assert sorted(r.status_code for r in readers.answers).count(200) == read_limit.SLOTS_WHILE_WRITING
    assert read_limit.SLOTS_WHILE_WRITING < read_limit.SLOTS


def _post(url: str, raw: bytes) -> httpx.Response:
    with http_client(url, timeout=60) as http:
        return http.post("/v1/events", content=raw, headers={"content-type": "application/json"})


def _wait(condition, timeout: float = 20) -> None:  # noqa: ANN001
    event = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        event.wait(0.01)
    raise AssertionError("the condition never held")



def test_the_verification_page_turned_away_is_html_in_the_readers_language(served, fresh_pg_url: str) -> None:
    world, server = served
    n = read_limit.SLOTS + read_limit.QUEUE + 2
    readers = None
    try:
        with reads_held(fresh_pg_url):
            readers = Readers(server.url, n, f"/t/{TAG}", {"accept-language": "fr"})
            readers.wait_for(n - read_limit.SLOTS)
            busy = readers.busy()
            assert len(busy) == n - read_limit.SLOTS
    finally:
        if readers is not None:
            readers.join()
    for response in busy:
        assert response.headers["content-type"].startswith("text/html")
        assert int(response.headers["retry-after"]) >= 1
        assert "Momentanément indisponible" in response.text
    assert sorted(r.status_code for r in readers.answers) == [200] * read_limit.SLOTS + [503] * len(busy)
