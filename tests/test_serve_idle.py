"""An idle `tagledger serve` waits; it does not poll its PostgreSQL database (issue 13).

Its background work (the checkpoint publisher, the custody and flags projection followers) waits on LISTEN/NOTIFY
for the log to grow. Counted in `pg_stat_database` (committed and rolled-back transactions of the service's own
database): a few seconds of idleness cost (nearly) none, and one write still wakes all of them: the projection
catches up and a checkpoint covering it is signed.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from ledger.keys import KeyPair
from tests.test_serve import Service

WINDOW_SECONDS = 8
QUIET_BEFORE = 11  # PostgreSQL (15+) reports an idle backend's counts within 10 s: the start-up's are in by then


def _transactions(url: str) -> int:
    db = url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        commits, rollbacks = conn.execute(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = %s", [db]).fetchone()
    return int(commits) + int(rollbacks)


@pytest.mark.postgres
def test_an_idle_service_runs_almost_no_transaction_and_still_wakes_on_a_write(fresh_pg_url: str,
                                                                                tmp_path: Path) -> None:
    service = Service(tmp_path / "home", fresh_pg_url, workers=2)
    try:
        service.wait_ready()
        assert service.get("/v1/log/checkpoint").status_code == 200  # the publisher runs in this service
        time.sleep(QUIET_BEFORE)
        before = _transactions(fresh_pg_url)
        time.sleep(WINDOW_SECONDS)
        idle = _transactions(fresh_pg_url) - before
        # polling once a second (publisher) plus the followers' checks came to dozens of transactions here
        assert idle <= 3, f"{idle} transactions in {WINDOW_SECONDS} s of idleness"

        # a write wakes the followers and the publisher: projection and checkpoint catch up with it
        key = tmp_path / "site.pem"
        KeyPair.generate().save(key)
        service.run("org", "register", "kalimbi-site", "--name", "Kalimbi", "--role", "site", "--country", "CD",
                    f"--public-key={KeyPair.load(key).public_key}", "--url", service.url)
        size = service.get("/healthz").json()["entries"]
        assert size == 2
        deadline = time.monotonic() + 30
        while (service.get("/v1/stats").json()["projection_position"] < size
               or service.get("/v1/log/checkpoint").text.splitlines()[1] != str(size)):
            assert time.monotonic() < deadline, "the projection or the checkpoint did not follow the write"
            time.sleep(0.1)
    finally:
        assert service.stop() == 0
