"""Shared test plumbing: PostgreSQL reachability, per-test databases, store URLs.

* PostgreSQL is checked once per session (``TAGLEDGER_TEST_PG`` or
  ``postgresql://root@127.0.0.1:5432/test``, 3 s timeout).  If it is unreachable a loud banner is
  printed at the start and in the summary, and every test marked ``postgres`` is skipped.
* Using ``fresh_pg_url`` (directly or through another fixture) implies the ``postgres`` marker.
* ``store_url`` is parametrised over ``sqlite`` and ``postgres``: a test using it runs against both.
* At the end of the session ``.pytest-pg-report.json`` (in the rootdir) records how the PostgreSQL
  tests fared; ``scripts/check_pg_report.py`` (run by ``make test``) fails the build if PostgreSQL
  was unreachable or any PostgreSQL test was skipped.
* Hypothesis runs with no deadline (the ``tagledger`` profile below).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import settings

# Hypothesis' per-example deadline (200 ms by default) is a wall-clock assertion: on a loaded 2-core machine a
# correct example can take longer, and the run then fails for a reason that is not the code's. Tests never
# assert wall-clock times (README), so no test has a deadline; a test may still set its own other settings.
settings.register_profile("tagledger", deadline=None)
settings.load_profile("tagledger")

DEFAULT_PG_URL = "postgresql://root@127.0.0.1:5432/test"
PG_CONNECT_TIMEOUT = 3  # seconds
REPORT_NAME = ".pytest-pg-report.json"
PG_MARK = "postgres"
PG_FIXTURE = "fresh_pg_url"


# ------------------------------------------------------------------------------------------------
# URL helpers
# ------------------------------------------------------------------------------------------------


def pg_base_url() -> str:
    """The PostgreSQL URL the tests use (its database part is the reachability-check database)."""
    return os.environ.get("TAGLEDGER_TEST_PG") or DEFAULT_PG_URL


def _with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# ------------------------------------------------------------------------------------------------
# Session state
# ------------------------------------------------------------------------------------------------


@dataclass
class _PgState:
    url: str
    reachable: bool
    reason: str = ""
    server_version: str = ""


_STATE_KEY = pytest.StashKey[_PgState]()
_RESULTS_KEY = pytest.StashKey[dict]()  # nodeid -> outcome, for postgres-marked tests
_COLLECTED_KEY = pytest.StashKey[list]()  # nodeids of postgres-marked tests selected to run


def _probe_pg(url: str) -> _PgState:
    try:
        import psycopg
    except Exception as exc:  # pragma: no cover - psycopg is a hard dependency
        return _PgState(url, False, f"psycopg cannot be imported: {exc!r}")
    try:
        with psycopg.connect(url, connect_timeout=PG_CONNECT_TIMEOUT, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:
        reason = " ".join(str(exc).split()) or repr(exc)
        return _PgState(url, False, f"{type(exc).__name__}: {reason}")
    return _PgState(url, True, server_version=version)


def _pg_state(config: pytest.Config) -> _PgState:
    state = config.stash.get(_STATE_KEY, None)
    if state is None:
        state = _probe_pg(pg_base_url())
        config.stash[_STATE_KEY] = state
    return state


def _banner_lines(state: _PgState) -> list[str]:
    return [
        "PostgreSQL IS NOT REACHABLE -- ALL POSTGRESQL TESTS ARE BEING SKIPPED",
        f"  url:    {_redact(state.url)}",
        f"  reason: {state.reason}",
        "  The SQLite half of the suite still runs, but the PostgreSQL backend is NOT tested.",
        "  Start it with:",
        "    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
        "  or point TAGLEDGER_TEST_PG at a reachable server.",
        "  `make test` / .ci/run FAIL when PostgreSQL tests are skipped.",
    ]


def _print_banner(tr, state: _PgState) -> None:
    tr.write_line("")
    tr.write_sep("!", "POSTGRESQL UNREACHABLE", red=True, bold=True)
    for line in _banner_lines(state):
        tr.write_line(line, red=True, bold=True)
    tr.write_sep("!", red=True, bold=True)


# ------------------------------------------------------------------------------------------------
# Hooks
# ------------------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    # pyproject.toml lists the marker too; registering it here keeps --strict-markers happy even
    # if the ini options are overridden.
    config.addinivalue_line("markers", f"{PG_MARK}: needs the PostgreSQL server")
    config.stash[_RESULTS_KEY] = {}
    config.stash[_COLLECTED_KEY] = []
    config.pluginmanager.register(_ResultTracker(config), "tagledger-pg-results")


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    state = _pg_state(config)
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is None:
        return
    if state.reachable:
        tr.write_line(
            f"PostgreSQL: reachable at {_redact(state.url)} (server {state.server_version})"
        )
    else:
        _print_banner(tr, state)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = _pg_state(config)
    skip = pytest.mark.skip(
        reason=f"PostgreSQL unreachable at {_redact(state.url)}: {state.reason}"
    )
    for item in items:
        if PG_FIXTURE in getattr(item, "fixturenames", ()) and item.get_closest_marker(PG_MARK) is None:
            item.add_marker(PG_MARK)
        if item.get_closest_marker(PG_MARK) is not None and not state.reachable:
            item.add_marker(skip)


def pytest_collection_finish(session: pytest.Session) -> None:
    # session.items is the final selection (after -k/-m deselection).
    session.config.stash[_COLLECTED_KEY] = [
        item.nodeid for item in session.items if item.get_closest_marker(PG_MARK) is not None
    ]


class _ResultTracker:
    """Records the outcome of every postgres-marked test (registered as a plugin in
    pytest_configure, because the pytest_runtest_logreport hook is not given the config)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._pg_ids: frozenset[str] | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self._pg_ids is None:
            self._pg_ids = frozenset(self.config.stash[_COLLECTED_KEY])
        if report.nodeid not in self._pg_ids:
            return
        results = self.config.stash[_RESULTS_KEY]
        if report.failed:
            outcome = "failed"  # an error in setup or teardown counts as a failure
        elif report.skipped:
            outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
        elif report.when == "call":
            outcome = "passed"
        else:
            return  # a passing setup/teardown says nothing new
        if results.get(report.nodeid) == "failed":
            return  # a failure is final (e.g. call passed, teardown errored)
        results[report.nodeid] = outcome


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput"):  # an xdist worker: the controller writes the report
        return
    state = _pg_state(config)
    collected = config.stash.get(_COLLECTED_KEY, [])
    results = config.stash.get(_RESULTS_KEY, {})
    counts = {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0}
    for nodeid in collected:
        outcome = results.get(nodeid)
        if outcome in counts:
            counts[outcome] += 1
    not_run = [nodeid for nodeid in collected if nodeid not in results]
    skipped_ids = [nodeid for nodeid in collected if results.get(nodeid) == "skipped"]
    report = {
        "reachable": state.reachable,
        "url": _redact(state.url),
        "reason": state.reason,
        "server_version": state.server_version,
        "collected": len(collected),
        **counts,
        "not_run": len(not_run),
        "skipped_tests": skipped_ids[:50],
        "pytest_exitstatus": int(exitstatus),
    }
    path = Path(config.rootpath) / REPORT_NAME
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = _pg_state(config)
    collected = config.stash.get(_COLLECTED_KEY, [])
    if not state.reachable:
        _print_banner(terminalreporter, state)
        terminalreporter.write_line(
            f"{len(collected)} PostgreSQL test(s) were SKIPPED because PostgreSQL is unreachable.",
            red=True,
            bold=True,
        )


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_pg_url(request: pytest.FixtureRequest):
    """URL of a brand-new, empty PostgreSQL database ``tl_<random hex>``; dropped afterwards.

    Using this fixture marks the test ``postgres`` (see pytest_collection_modifyitems); if the
    server is unreachable the test is skipped with the reason.
    """
    state = _pg_state(request.config)
    if not state.reachable:
        pytest.skip(f"PostgreSQL unreachable at {_redact(state.url)}: {state.reason}")

    import psycopg
    from psycopg import sql

    dbname = "tl_" + secrets.token_hex(8)
    admin_url = _with_database(state.url, "postgres")
    with psycopg.connect(admin_url, connect_timeout=PG_CONNECT_TIMEOUT, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        yield _with_database(state.url, dbname)
    finally:
        with psycopg.connect(
            admin_url, connect_timeout=PG_CONNECT_TIMEOUT, autocommit=True
        ) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )


@pytest.fixture
def tmp_sqlite_url(tmp_path: Path) -> str:
    """``sqlite:///<tmp_path>/ledger.db`` (an absolute path, so four slashes in all)."""
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest) -> str:
    """A fresh store URL; a test using it runs once per backend (``[sqlite]``, ``[postgres]``).

    The backend fixtures are requested dynamically so the ``[sqlite]`` case does not depend on
    (and is not marked by) ``fresh_pg_url``.
    """
    if request.param == "sqlite":
        return request.getfixturevalue("tmp_sqlite_url")
    return request.getfixturevalue("fresh_pg_url")
