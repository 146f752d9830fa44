"""The `tagledger` command, run in-process (`ledger.cli.main([...])`) on a SQLite home in tmp_path.

Keys live in local PEM files made by `tagledger keygen`; every custody event is signed with them by the CLI.
One part talks to a real HTTP server (`--url`) started on the same home.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from ledger.cli import main
from ledger.keys import KeyPair
from ledger.service import Ledger
from tests.cli_process import run_tagledger
from tests.ledger.raw_sql import raw_execute

SITE, TRADER, REFINER = "kalimbi-site", "bukavu-trader", "thaisarco"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Home:
    path: Path
    capsys: Any

    def run(self, *args: str | int) -> Result:
        """`tagledger --home <path> args...`, in this process."""
        self.capsys.readouterr()  # drop anything printed before
        code = main(["--home", str(self.path), *map(str, args)])
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *args: str | int) -> Result:
        result = self.run(*args)
        assert result.code == 0, f"tagledger {' '.join(map(str, args))} -> {result.code}\n{result.out}\n{result.err}"
        return result

    def key(self, org: str) -> Path:
        return self.path / "orgkeys" / f"{org}.pem"

    def entries(self) -> int:
        ledger = Ledger.open(f"sqlite:///{self.path / 'ledger.db'}")
        try:
            return ledger.store.size()
        finally:
            ledger.close()


@pytest.fixture
def home(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Home:
    for variable in ("TAGLEDGER_HOME", "TAGLEDGER_DB", "TAGLEDGER_PUBLIC_URL"):
        monkeypatch.delenv(variable, raising=False)
    return Home(tmp_path / "home", capsys)


@pytest.fixture
def registered(home: Home) -> Home:
    """An initialised home with a site, a trader and a refiner (keys from `keygen`) and tags issued."""
    home.ok("init")
    for org, role, extra in [(SITE, "site", ["--lat", "-2.1234567", "--lon", "28.7654321"]),
                             (TRADER, "trader", []), (REFINER, "refiner", ["--rmi-cid", "CID001898"])]:
        public_key = home.ok("keygen", "--out", home.key(org)).json()["public_key"]
        # `--public-key=KEY`: a base64url key may begin with "-" (see test_public_key_starting_with_a_dash)
        home.ok("org", "register", org, "--name", org.replace("-", " ").title(), "--role", role, "--country", "CD",
                f"--public-key={public_key}", *extra)
    home.ok("tags", "issue", SITE, "--prefix", "KAL-", "--count", 4, "--width", 6)
    home.ok("tags", "issue", REFINER, "--tag", "LOT-0001", "--tag", "LOT-0002", "--tag", "LOT-0003")
    return home


# ------------------------------------------------------------------------------------------------
# init and keygen
# ------------------------------------------------------------------------------------------------


def test_init_twice(home: Home) -> None:
    first = home.ok("init")
    assert "Created ledger" in first.out
    assert (home.path / "tagledger.json").exists()
    config = json.loads((home.path / "tagledger.json").read_text())
    assert config["operator"] == "itsci" and config["db"].startswith("sqlite:///")
    root = home.path / "keys" / "itsci.pem"
    assert root.exists() and (root.stat().st_mode & 0o777) == 0o600
    assert KeyPair.load(root).kid in first.out
    assert home.entries() == 1

    second = home.ok("init")
    assert "already initialised" in second.out
    assert "1 entries" in second.out
    assert home.entries() == 1
    assert KeyPair.load(root).kid in first.out  # the root key was not replaced


def test_keygen_refuses_to_overwrite(home: Home, tmp_path: Path) -> None:
    out = tmp_path / "keys" / "site.pem"
    made = home.ok("keygen", "--out", out).json()
    assert made["private_key_file"] == str(out)
    assert (out.stat().st_mode & 0o777) == 0o600
    pair = KeyPair.load(out)
    assert made["public_key"] == pair.public_key and made["kid"] == pair.kid
    assert len(made["public_key"]) == 43 and len(made["kid"]) == 16
    before = out.read_bytes()

    again = home.run("keygen", "--out", out)
    assert again.code == 2
    assert "refusing to overwrite" in again.err
    assert out.read_bytes() == before


def _key_starting_with_a_dash() -> KeyPair:
    while True:  # one key in 64 starts with "-"
        pair = KeyPair.generate()
        if pair.public_key.startswith("-"):
            return pair


def test_public_key_starting_with_a_dash(home: Home) -> None:
    home.ok("init")
    pair = _key_starting_with_a_dash()
    home.ok("org", "register", SITE, "--name", "Kalimbi", "--role", "site", "--country", "CD",
            "--public-key", pair.public_key)
    assert home.entries() == 2


def test_public_key_starting_with_a_dash_with_equals(home: Home) -> None:
    """The workaround: `--public-key=KEY` always works."""
    home.ok("init")
    pair = _key_starting_with_a_dash()
    home.ok("org", "register", SITE, "--name", "Kalimbi", "--role", "site", "--country", "CD",
            f"--public-key={pair.public_key}")
    home.ok("org", "add-key", SITE, f"--public-key={_key_starting_with_a_dash().public_key}")
    assert home.entries() == 3


# ------------------------------------------------------------------------------------------------
# The whole chain through the CLI, in-process
# ------------------------------------------------------------------------------------------------


def test_record_the_chain_with_local_keys(registered: Home) -> None:
    home = registered
    site = ["--org", SITE, "--key", home.key(SITE)]
    refiner = ["--org", REFINER, "--key", home.key(REFINER)]

    for tag, grams in [("KAL-000001", 10_000), ("KAL-000002", 12_000), ("KAL-000004", 3_000)]:
        receipt = home.ok("record", "attach", tag, *site, "--mineral", "tin", "--mass-g", grams, "--pit", "Pit 7",
                          "--ore", "cassiterite", "--lat", "-2.1234567", "--lon", "28.7654321",
                          "--price-minor-per-kg", 1250).json()
        assert receipt["duplicate"] is False and len(receipt["hash"]) == 64
    for tag, grams in [("KAL-000001", 9_900), ("KAL-000002", 12_000)]:
        home.ok("record", "dispatch", tag, *site, "--to", REFINER, "--location", "Bukavu road")
        home.ok("record", "receive", tag, *refiner, "--mass-g", grams)
    home.ok("record", "merge", "LOT-0001", "KAL-000001", "KAL-000002", *refiner, "--mass-g", 21_900)
    home.ok("record", "split", "LOT-0001", *refiner, "--output", "LOT-0002=15000", "--output", "LOT-0003=6900")
    consumed = home.ok("record", "consume", "LOT-0002", *refiner, "--product", "tin ingot", "--mass-g", 15_000).json()
    home.ok("record", "void", "KAL-000004", *site, "--reason", "lost", "--note", "fell in the river")

    bag = home.ok("tag", "KAL-000001")
    assert bag.out.startswith("KAL-000001: Authentic. Merged into lot LOT-0001.")
    assert "mass: 9.900 kg" in bag.out
    assert "origin: Kalimbi Site, pit Pit 7, tin" in bag.out
    assert "went into lot LOT-0001" in bag.out
    assert "custody_received" in bag.out and "by Thaisarco" in bag.out

    ingot = home.ok("tag", "lot-0002")  # ids are upper-cased
    assert ingot.out.startswith("LOT-0002: Authentic. Consumed at the smelter/refiner Thaisarco.")
    assert "origin: Kalimbi Site" in ingot.out

    document = home.ok("tag", "LOT-0002", "--json").json()
    assert document["verdict"]["code"] == "consumed"
    assert document["verdict"]["refiner"]["rmi_cid"] == "CID001898"
    assert document["events"][-1]["hash"] == consumed["hash"]
    # signed with the local key files, nothing else
    assert document["events"][-1]["envelope"]["body"]["key"] == KeyPair.load(home.key(REFINER)).kid
    assert document["problems"] == []

    lot = home.ok("tag", "LOT-0001")
    assert "made of 2 tags: KAL-000001, KAL-000002" in lot.out

    voided = home.run("tag", "KAL-000004")
    assert voided.code == 4  # not authentic: voided material must not be accepted
    assert "Voided (lost)" in voided.out

    unknown = home.run("tag", "NOPE-000001")
    assert unknown.code == 3
    assert unknown.out.startswith("UNKNOWN")


def test_rmap_report(registered: Home, tmp_path: Path) -> None:
    """`tagledger rmap-report`: the refiner's inputs of today, from the home's store, as JSON, CSV and XLSX."""
    import csv
    import io
    from datetime import date, timedelta

    import openpyxl

    home = registered
    site = ["--org", SITE, "--key", home.key(SITE)]
    refiner = ["--org", REFINER, "--key", home.key(REFINER)]
    for tag, grams in [("KAL-000001", 9_900), ("KAL-000002", 12_000)]:
        home.ok("record", "attach", tag, *site, "--mineral", "tin", "--mass-g", grams, "--pit", "Pit 7")
        home.ok("record", "dispatch", tag, *site, "--to", REFINER)
        home.ok("record", "receive", tag, *refiner, "--mass-g", grams)
    home.ok("record", "merge", "LOT-0001", "KAL-000001", "KAL-000002", *refiner, "--mass-g", 21_900)
    home.ok("record", "consume", "LOT-0001", *refiner, "--mass-g", 21_900)
    today = date.today().isoformat()  # the events' times are now (UTC): take a period of three days around it
    start, end = (date.today() - timedelta(days=1)).isoformat(), (date.today() + timedelta(days=1)).isoformat()
    report = home.ok("rmap-report", REFINER, "--from", start, "--to", end).json()
    lots = {lot["tag"]: lot for lot in report["lots"]}
    assert set(lots) == {"KAL-000001", "KAL-000002", "LOT-0001"}
    assert lots["LOT-0001"]["consumed"]["mass_g"] == 21_900 and lots["LOT-0001"]["received"] is None
    assert lots["KAL-000001"]["received"]["mass_g"] == 9_900 and lots["KAL-000001"]["chain_complete"]
    assert report["totals"]["received_mass_g"] == 21_900 and report["refiner"]["rmi_cid"] == "CID001898"
    rows = list(csv.DictReader(io.StringIO(home.ok("rmap-report", REFINER, "--from", start, "--to", end,
                                                   "--format", "csv").out)))
    assert sorted(r["lot_tag"] for r in rows) == ["KAL-000001", "KAL-000002", "LOT-0001"]
    out = tmp_path / "rmap.xlsx"
    home.ok("rmap-report", REFINER, "--from", start, "--to", end, "--format", "xlsx", "--lang", "fr", "--out", out)
    sheet = openpyxl.load_workbook(out).worksheets[0]
    assert sheet["A1"].value == "Métal" and sheet.max_row == 4
    assert home.run("rmap-report", SITE, "--from", today, "--to", today).code == 3  # not a refiner
    assert home.run("rmap-report", REFINER, "--from", end, "--to", start).code == 2
    assert home.run("rmap-report", REFINER, "--from", today, "--to", today, "--format", "xlsx").code == 2


def test_refusals_are_reported_not_raised(registered: Home) -> None:
    home = registered
    before = home.entries()
    # the trader does not hold the site's tag (which is not even attached)
    refused = home.run("record", "void", "KAL-000001", "--org", TRADER, "--key", home.key(TRADER), "--reason", "lost")
    assert refused.code == 2
    assert "custody.not_holder" in refused.err
    # a key file that is not the organisation's registered key
    refused = home.run("record", "attach", "KAL-000001", "--org", SITE, "--key", home.key(TRADER),
                       "--mineral", "tin", "--mass-g", 1, "--pit", "P")
    assert refused.code == 2 and "key.unknown" in refused.err
    # a bad --output
    refused = home.run("record", "split", "LOT-0001", "--org", REFINER, "--key", home.key(REFINER),
                       "--output", "LOT-0002:5")
    assert refused.code == 2 and "TAG=GRAMS" in refused.err
    # tags issue without tags
    refused = home.run("tags", "issue", SITE)
    assert refused.code == 2
    assert home.entries() == before


# ------------------------------------------------------------------------------------------------
# Over HTTP: `--url` against a live server on the same home
# ------------------------------------------------------------------------------------------------


class _Server:
    """`uvicorn.Server` on a pre-bound 127.0.0.1 socket, in a thread."""

    def __init__(self, app: Any):
        # proto=IPPROTO_TCP so that asyncio sets TCP_NODELAY (no 40 ms stalls)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.server.started and httpx.get(self.url + "/healthz", timeout=1, trust_env=False).is_success:
                    return self
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.01)

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def served(registered: Home) -> Iterator[tuple[Home, str]]:
    from api.app import create_app

    ledger = Ledger.open(f"sqlite:///{registered.path / 'ledger.db'}")
    try:
        with _Server(create_app(ledger)) as server:
            yield registered, server.url
    finally:
        ledger.close()


def test_cli_over_http(served: tuple[Home, str]) -> None:
    home, url = served
    site = ["--org", SITE, "--key", home.key(SITE), "--url", url]
    trader = ["--org", TRADER, "--key", home.key(TRADER), "--url", url]
    before = httpx.get(url + "/healthz", trust_env=False).json()["entries"]

    home.ok("record", "attach", "KAL-000003", *site, "--mineral", "tin", "--mass-g", 8_000, "--pit", "Pit 2")
    # a transfer is one command each side: the CLI fetches the head, signs locally and posts
    sent = home.ok("record", "dispatch", "KAL-000003", *site, "--to", TRADER, "--mass-g", 8_000).json()
    received = home.ok("record", "receive", "KAL-000003", *trader, "--mass-g", 7_950).json()
    assert received["seq"] == sent["seq"] + 1
    assert httpx.get(url + "/healthz", trust_env=False).json()["entries"] == before + 3

    shown = home.ok("tag", "KAL-000003", "--url", url)
    assert shown.out.startswith(f"KAL-000003: Authentic. In the custody of {TRADER.replace('-', ' ').title()}.")
    assert "mass: 7.950 kg" in shown.out
    document = home.ok("tag", "KAL-000003", "--url", url, "--json").json()
    assert document["state"]["holder"] == TRADER
    assert document["events"][-1]["hash"] == received["hash"]

    # a refusal over HTTP comes back as the server's problem, exit code 2
    refused = home.run("record", "receive", "KAL-000003", *trader, "--mass-g", 7_950)
    assert refused.code == 2 and "custody.not_in_transit" in refused.err
    assert home.run("tag", "NOPE-000001", "--url", url).code == 3


# ------------------------------------------------------------------------------------------------
# The custody projection
# ------------------------------------------------------------------------------------------------


def test_projection_rebuild_matches_status(registered: Home) -> None:
    home = registered
    site = ["--org", SITE, "--key", home.key(SITE)]
    home.ok("record", "attach", "KAL-000001", *site, "--mineral", "tin", "--mass-g", 5_000, "--pit", "P1")
    home.ok("record", "dispatch", "KAL-000001", *site, "--to", TRADER)

    both = home.ok("projection", "status").json()
    first = both["custody"]
    assert first["position"] == both["flags"]["position"] == home.entries()
    assert first["tags"] == 7  # four bags and three lot tags

    rebuilt_both = home.ok("projection", "rebuild").json()
    rebuilt = rebuilt_both["custody"]
    assert rebuilt["processed"] == rebuilt_both["flags"]["processed"] == home.entries()  # from entry #0
    assert rebuilt["digest"] == first["digest"]
    assert rebuilt_both["flags"]["flagged_tags"] == both["flags"]["flagged_tags"]

    status = home.ok("projection", "status").json()["custody"]
    assert status["processed"] == 0
    assert status["digest"] == rebuilt["digest"]
    assert status["position"] == rebuilt["position"] == home.entries()

    # the projection follows new entries, and a rebuild still agrees
    home.ok("record", "receive", "KAL-000001", "--org", TRADER, "--key", home.key(TRADER), "--mass-g", 5_000)
    moved = home.ok("projection", "status").json()["custody"]
    assert moved["processed"] == 1 and moved["digest"] != status["digest"]
    assert home.ok("projection", "rebuild").json()["custody"]["digest"] == moved["digest"]

# ------------------------------------------------------------------------------------------------
# Risk and remediation: the `record incident-*`, `action-*` and `site-monitor` verbs
# ------------------------------------------------------------------------------------------------

MONITOR = "better-mining"


def test_record_an_incident_its_actions_and_a_site_visit(registered: Home, tmp_path: Path) -> None:
    home = registered
    public_key = home.ok("keygen", "--out", home.key(MONITOR)).json()["public_key"]
    home.ok("org", "register", MONITOR, "--name", "Better Mining", "--role", "monitor", "--country", "CD",
            f"--public-key={public_key}")
    monitor = ["--org", MONITOR, "--key", home.key(MONITOR)]
    site = ["--org", SITE, "--key", home.key(SITE)]
    photo = tmp_path / "pit-3.jpg"
    photo.write_bytes(b"\xff\xd8 a photo of pit 3")
    home.ok("record", "attach", "KAL-000001", *site, "--mineral", "tin", "--mass-g", 10_000, "--pit", "Pit 3")

    reported = home.ok("record", "incident-report", "INC-2026-0001", *monitor, "--site", SITE,
                       "--category", "child_labour", "--severity", "high", "--worst-forms",
                       "--description", "two minors carrying ore at pit 3", "--lat", "-2.1234567",
                       "--lon", "28.7654321", "--summary", "minors seen at a pit", "--referred-to", MONITOR,
                       "--evidence", photo).json()
    assert reported["details_uploaded"] is True and len(reported["details_sha256"]) == 64
    assert reported["evidence_uploaded"] == [hashlib.sha256(photo.read_bytes()).hexdigest()]  # sealed, beside
    home.ok("record", "incident-confirm", "INC-2026-0001", *monitor, "--note", "seen again on the next visit")
    home.ok("record", "action-assign", "INC-2026-0001", "A1", "--org", "itsci", "--key",
            home.path / "keys" / "itsci.pem", "--owner", SITE, "--description", "remove minors from the pits",
            "--cycle", "2099-12")
    statement = tmp_path / "fence.pdf"
    statement.write_bytes(b"%PDF-1.4 the fence, signed by the site manager")
    progress = home.ok("record", "action-progress", "INC-2026-0001", "A1", *site, "--note", "fence built",
                       "--percent", 100, "--evidence", photo, "--evidence", statement, "--keep-evidence").json()
    assert "evidence_uploaded" not in progress  # the site keeps its files: only their hashes are recorded
    # only a monitor verifies: the site's own claim is refused, with the rule named, and nothing is written
    before = home.entries()
    refused = home.run("record", "action-verify", "INC-2026-0001", "A1", *site, "--outcome", "implemented")
    assert refused.code == 2 and "actor.role" in refused.err
    assert home.entries() == before
    home.ok("record", "action-verify", "INC-2026-0001", "A1", *monitor, "--outcome", "implemented")
    home.ok("record", "incident-close", "INC-2026-0001", *monitor, "--resolution", "minors referred to school")
    home.ok("record", "site-monitor", SITE, *monitor, "--period", "2026-11", "--price-paid", 900,
            "--reference-price", 1200, "--women", 12, "--men", 40, "--minors", 0, "--concern", "price",
            "--concern", "safety")
    refused = home.run("record", "site-monitor", SITE, *monitor, "--women", 3)
    assert refused.code == 2 and "--women and --men" in refused.err

    ledger = Ledger.open(f"sqlite:///{home.path / 'ledger.db'}")
    try:
        book = ledger.site_risk_book(SITE)
        details = ledger.sealed_details("INC-2026-0001")
        files = ledger.store.sealed_evidence_list("INC-2026-0001")
        sealed_photo = ledger.sealed_evidence("INC-2026-0001", hashlib.sha256(photo.read_bytes()).hexdigest())
    finally:
        ledger.close()
    incident = book.incidents["INC-2026-0001"]
    assert (incident.category, incident.severity, incident.worst_forms, incident.status) == (
        "child_labour", "high", True, "closed")
    assert incident.details_sha256 == reported["details_sha256"]
    assert [e["sha256"] for e in incident.evidence] == [hashlib.sha256(photo.read_bytes()).hexdigest()]
    action = incident.actions["A1"]
    assert (action.owner, action.status, action.progress, action.cycle) == (SITE, "implemented", 100, "2099-12")
    # the description was sealed: it is in the uploaded details, not in the signed event
    assert details is not None and details["description"] == "two minors carrying ore at pit 3"
    assert details["gps"] == {"lat": "-2.1234567", "lon": "28.7654321"}
    assert [(f[1], f[2]) for f in files] == [("image/jpeg", len(photo.read_bytes()))]  # not the kept statement
    assert sealed_photo is not None and sealed_photo.data == photo.read_bytes()
    (visit,) = book.visits[SITE]
    assert visit.data["workforce"] == {"women": 12, "men": 40} and visit.data["concerns"] == ["price", "safety"]
    assert visit.data["price_paid"] == {"currency": "USD", "minor_per_kg": 900}

    # the tag's view carries its site's risk context: one red flag in its window, remediated
    risk = home.ok("tag", "KAL-000001", "--json").json()["risk"]
    (context,) = risk["sites"]
    assert context["site"] == SITE and [i["id"] for i in context["incidents"]] == ["INC-2026-0001"]
    assert (risk["open_red_flags_in_window"], risk["remediated"], risk["unremediated"]) == (1, 1, 0)


# ------------------------------------------------------------------------------------------------
# What a person reads when the command refuses (issue 11.8), run as a person runs it: a process
# ------------------------------------------------------------------------------------------------

WEAKEN = {  # what an intruder or a careless administrator does to the log table's append-only trigger
    "sqlite": "DROP TRIGGER tagledger_events_no_update",
    "postgres": "ALTER TABLE tagledger_events_tt_main DISABLE TRIGGER tagledger_events_append_only",
}


def test_audit_help_is_the_auditors_help() -> None:
    done = run_tagledger("audit", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: tagledger audit") and "--vkey" in done.stdout and not done.stderr
    # options before the source reach the auditor too (argparse took them for the main command's before)
    done = run_tagledger("audit", "--no-state", "--vkey", "x+00000000+AA", "http://127.0.0.1:9")
    assert done.returncode == 2 and "unrecognized arguments" not in done.stderr + done.stdout
    said = done.stdout + done.stderr  # the source is unreachable: one line naming it, never a traceback
    assert "127.0.0.1:9" in said and "Traceback" not in said


def test_a_store_that_is_no_longer_append_only_is_refused_in_one_line(store_url: str, tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "home"), "--db", store_url]
    assert main([*home, "init"]) == 0
    raw_execute(store_url, WEAKEN["sqlite" if store_url.startswith("sqlite") else "postgres"])
    bundle = tmp_path / "out.zip"
    for command in (["check"], ["export", "--out", str(bundle)], ["serve", "--port", "0"]):
        done = run_tagledger(*home, *command)
        assert done.returncode == 2, (command, done.returncode, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, (command, done.stderr)
        assert lines[0].startswith("tagledger: refusing to run on a log that is not append-only: "), lines
        assert "tagledger_events_tt_main" in lines[0]
    assert not bundle.exists()


def _origin(home: Home) -> str:
    ledger = Ledger.open(f"sqlite:///{home.path / 'ledger.db'}")
    try:
        return ledger.identity().origin
    finally:
        ledger.close()


def test_every_ledger_gets_a_log_origin_of_its_own(home: Home, tmp_path: Path) -> None:
    """Two `init`s, two origins (before issue 11 every ledger was `tagledger.local/log`); a store keeps its own;
    `--origin` chooses one, and one that cannot name a C2SP log is refused before anything is created."""
    from verification.note import is_valid_key_name

    other = Home(tmp_path / "other", home.capsys)
    first, second = home.ok("init"), other.ok("init")
    origins = [_origin(home), _origin(other)]
    assert origins[0] != origins[1]
    for origin, created in zip(origins, (first, second)):
        assert re.fullmatch(r"tagledger\.local/[0-9a-f]{16}/log", origin) and is_valid_key_name(origin)
        assert f"log origin {origin}" in created.out
    again = home.ok("init", "--origin", "elsewhere.example/log")  # an existing store keeps its origin
    assert "already initialised" in again.out and origins[0] in again.out and _origin(home) == origins[0]

    chosen = Home(tmp_path / "chosen", home.capsys)
    chosen.ok("init", "--origin", "ledger.itsci.example/kivu")
    assert _origin(chosen) == "ledger.itsci.example/kivu"
    for bad in ("two words", "a+b", ""):
        refused = Home(tmp_path / f"refused{len(bad)}", home.capsys).run("init", "--origin", bad)
        assert refused.code == 2 and len(refused.err.strip().splitlines()) == 1, refused
        assert "cannot name a log" in refused.err
        assert not (tmp_path / f"refused{len(bad)}" / "ledger.db").exists()
