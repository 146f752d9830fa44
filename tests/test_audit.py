"""The auditor's replay (`tagledger audit`, `verification.audit`) and the service's own check (`tagledger check`),
on real ledgers: a clean log passes; an edited, deleted, reordered or inserted entry fails naming the entry;
a forked log fails the consistency check; a rewritten store is caught by `check` and refused by `serve`."""

from __future__ import annotations

import json
import sqlite3
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from api.app import create_app
from ledger.bundle import export_bundle
from ledger.client import LedgerError, LocalTransport
from ledger.consistency import check_store, quick_check
from ledger.store.sqlite import sqlite_path
from tests.cli_process import run_tagledger
from tests.integration.conftest import ServerThread, http_client
from tests.ledger.raw_sql import update_behind_the_triggers
from tests.ledger.world import World, attach_and_deliver, make_world
from verification import audit
from verification.checkpoint import Checkpoint, sign_checkpoint
from verification.encoding import b64url_encode, key_id
from verification.entry import decode_entry

TAGS = ["KAL-000001", "KAL-000002", "KAL-000003"]


def _world(url: str) -> World:
    world = make_world(url, tags=6)
    for tag in TAGS:
        attach_and_deliver(world, tag)
    world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
    world.ledger.start_projection(follow=False).catch_up()
    return world


@pytest.fixture
def world(store_url: str) -> Iterator[World]:
    w = _world(store_url)
    try:
        yield w
    finally:
        w.ledger.close()


@pytest.fixture
def bundle(tmp_path: Path, world: World) -> Path:
    path = tmp_path / "ledger.zip"
    export_bundle(world.ledger, path)
    return path


def _audit(*argv: str) -> tuple[int, dict]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = audit.main([*argv, "--json", "--no-progress", "--workers", "1"])
    return status, json.loads(out.getvalue())


def _vkey(world: World) -> str:
    return world.ledger.identity().vkey


def _rewrite(bundle: Path, change: Callable[[list[bytes]], list[bytes]]) -> Path:
    """A copy of the bundle whose entries went through `change` (an intruder editing the file)."""
    out = bundle.with_name("tampered.zip")
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "entries.ndjson":
                lines = data.split(b"\n")[:-1]
                data = b"".join(line + b"\n" for line in change(lines))
            dst.writestr(item, data)
    return out


def test_a_clean_bundle_passes_with_the_pinned_key(world: World, bundle: Path, tmp_path: Path) -> None:
    status, report = _audit(str(bundle), "--vkey", _vkey(world), "--state-dir", str(tmp_path / "state"))
    assert status == 0, report
    assert report["ok"] and report["size"] == world.ledger.store.size()
    steps = {s["step"] for s in report["steps"]}
    assert {"checkpoint", "replay", "merkle root", "projection"} <= steps
    assert not report["warnings"]


def test_the_as_of_replay_shows_a_tag_as_it_stood(world: World, bundle: Path) -> None:
    first_attach = next(s.seq for s in world.ledger.store.iter_all() if s.type == "tag_attached")
    status, report = _audit(str(bundle), "--no-state", "--as-of", str(first_attach), "--tag", TAGS[0])
    assert status == 0
    assert report["tags"][TAGS[0]]["status"] == "issued"
    status, report = _audit(str(bundle), "--no-state", "--as-of", str(first_attach + 1), "--tag", TAGS[0])
    assert report["tags"][TAGS[0]]["status"] == "in_custody"
    assert report["tags"][TAGS[0]]["holder"] == "kalimbi"
    # and the server agrees, tag by tag
    view = world.ledger.tag(TAGS[0], as_of=first_attach + 1)
    assert view is not None and str(view.state.status) == "in_custody"


def _swap(lines: list[bytes], i: int) -> list[bytes]:
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    return lines


def _edit_received(lines: list[bytes], i: int) -> list[bytes]:
    """Change entry i's receipt time by a microsecond: the signatures still verify, only the tree notices."""
    entry = decode_entry(lines[i])
    old = entry.received.encode()
    new = old[:-2] + (b"0" if old[-2:-1] != b"0" else b"1") + b"Z"
    lines[i] = lines[i].replace(b'"received":"' + old, b'"received":"' + new)
    return lines


TAMPERING = {
    # name: (change, the entry the audit must name, the rule or words it must report)
    "edited mass": (lambda ls, i: [l.replace(b'"mass_g":50000', b'"mass_g":60000', 1) if n == i else l
                                   for n, l in enumerate(ls)], "signature.invalid"),
    "deleted": (lambda ls, i: ls[:i] + ls[i + 1:], "entry.seq"),
    "reordered": (_swap, "entry.seq"),
    "inserted copy": (lambda ls, i: ls[:i] + [ls[i - 1]] + ls[i:], "entry.seq"),
    "received edited": (_edit_received, "was altered"),
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_a_tampered_bundle_fails_naming_the_entry(world: World, bundle: Path, how: str) -> None:
    change, expected = TAMPERING[how]
    entries = [s.data for s in world.ledger.store.iter_all()]
    target = next(i for i, raw in enumerate(entries) if b'"mass_g":50000' in raw and b"tag_attached" in raw)
    tampered = _rewrite(bundle, lambda lines: change(list(lines), target))
    status, report = _audit(str(tampered), "--vkey", _vkey(world), "--no-state")
    assert status == 1, report
    assert report["first_bad_entry"] == target
    assert expected in report["failure"] and f"#{target}" in report["failure"]


def test_a_forked_or_rewritten_log_fails_the_consistency_check(world: World, bundle: Path, tmp_path: Path) -> None:
    size = world.ledger.store.size()
    key = world.log_key.private_key
    origin = world.ledger.identity().origin
    real_old_root = world.ledger.store.tree.root(size - 2)
    forged = {
        "same size, other root": Checkpoint(origin, size, bytes(32)),
        "smaller tree that is not a prefix": Checkpoint(origin, size - 2, bytes(reversed(real_old_root))),
        "larger tree than the log": Checkpoint(origin, size + 5, real_old_root),
    }
    for name, checkpoint in forged.items():
        kept = tmp_path / f"{name}.txt"
        kept.write_text(sign_checkpoint(checkpoint, origin, key))
        status, report = _audit(str(bundle), "--vkey", _vkey(world), "--no-state", "--previous", str(kept))
        assert status == 1, (name, report)
        assert "rewritten" in report["failure"] or "shrank" in report["failure"], (name, report["failure"])
    # the genuine earlier checkpoint is consistent
    kept = tmp_path / "genuine.txt"
    kept.write_text(sign_checkpoint(Checkpoint(origin, size - 2, real_old_root), origin, key))
    status, report = _audit(str(bundle), "--vkey", _vkey(world), "--no-state", "--previous", str(kept))
    assert status == 0, report


def test_the_audit_over_http_uses_the_servers_proofs_and_remembers_the_checkpoint(
    world: World, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with ServerThread(create_app(world.ledger, follow_projection=False)) as server:
        status, report = _audit(server.url, "--state-dir", str(state))
        assert status == 0, report
        assert any("trusted on first use" in w for w in report["warnings"])
        attach_and_deliver(world, "KAL-000004")
        world.ledger.publish_checkpoint()
        world.ledger.projection.catch_up()
        status, report = _audit(server.url, "--state-dir", str(state))
        assert status == 0, report
        assert any(s["step"] == "consistency" and "proof verifies" in s["result"] for s in report["steps"])
        assert not report["warnings"]  # the key is now the one remembered


def test_the_audit_over_http_follows_the_servers_page_links(
    world: World, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server whose cap is below the auditor's page answers fewer entries than asked, with a `next` link
    (protocol 11.3): the auditor reads on from there instead of taking the log for ended."""
    from api import routes_log

    monkeypatch.setattr(routes_log, "MAX_ENTRIES", 7)
    monkeypatch.setattr(routes_log, "MAX_LEAF_HASHES", 5)
    size = world.ledger.store.size()
    assert size > 2 * 7
    with ServerThread(create_app(world.ledger, follow_projection=False)) as server:
        status, report = _audit(server.url, "--vkey", _vkey(world), "--no-state")
        assert status == 0, report
        assert report["size"] == size
        # the stored leaf hashes are paged the same way: a damaged entry is still named
        _tamper_store(store_url, size - 3)
        status, report = _audit(server.url, "--vkey", _vkey(world), "--no-state")
    assert status == 1 and report["first_bad_entry"] == size - 3, report


def test_a_ledger_initialised_again_at_the_same_address_is_audited_as_a_new_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tagledger init` in a new home, served at the same URL: a new log, with an origin of its own, so the
    auditor (which remembers a key and a checkpoint per origin) trusts it on first use instead of failing
    with "the log key changed" (issue 11.8: every ledger was `tagledger.local/log`)."""
    from ledger.cli import main
    from ledger.keys import KeyPair
    from ledger.service import Ledger

    for variable in ("TAGLEDGER_HOME", "TAGLEDGER_DB"):
        monkeypatch.delenv(variable, raising=False)
    state, port, origins = tmp_path / "audit-state", 0, []
    for name in ("first", "second"):
        home = tmp_path / name
        assert main(["--home", str(home), "init"]) == 0
        ledger = Ledger.open(f"sqlite:///{home / 'ledger.db'}")
        try:
            ledger.start_checkpoints(KeyPair.load(home / "keys" / "log.pem"), publish_in_background=False)
            ledger.start_projection(follow=False).catch_up()
            with ServerThread(create_app(ledger, follow_projection=False), port=port) as server:
                port = server.port
                status, report = _audit(server.url, "--state-dir", str(state))
            origins.append(ledger.identity().origin)
        finally:
            ledger.close()
        assert status == 0, report
        assert any("trusted on first use" in w for w in report["warnings"]), report
    assert origins[0] != origins[1]
    assert {p.name for p in state.iterdir()} == {f"{o.replace('/', '_')}.{what}" for o in origins
                                                 for what in ("vkey", "checkpoint")}


def _tamper_store(url: str, seq: int) -> None:
    """Edit one stored entry's receipt time in place, as someone with the database file or superuser would."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(sqlite_path(url))
        try:
            conn.execute("DROP TRIGGER tagledger_events_no_update")
            row = conn.execute("SELECT data FROM tagledger_events_tt_main WHERE id = ?", [seq + 1]).fetchone()
            data = _edit_received([bytes(row[0])], 0)[0]
            conn.execute("UPDATE tagledger_events_tt_main SET data = ? WHERE id = ?", [data, seq + 1])
            conn.commit()
        finally:
            conn.close()
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            data = bytes(conn.execute("SELECT data FROM tagledger_events_tt_main WHERE id = %s", [seq + 1]).fetchone()[0])
            conn.execute("ALTER TABLE tagledger_events_tt_main DISABLE TRIGGER tagledger_events_append_only")
            conn.execute("UPDATE tagledger_events_tt_main SET data = %s WHERE id = %s",
                         [_edit_received([data], 0)[0], seq + 1])
            conn.execute("ALTER TABLE tagledger_events_tt_main ENABLE TRIGGER tagledger_events_append_only")


def test_an_entry_edited_in_the_database_is_named_by_check_and_by_the_audit(world: World, store_url: str) -> None:
    verifier = world.ledger.identity().verifier
    assert check_store(world.ledger.store, verifier).ok
    target = 9
    _tamper_store(store_url, target)
    report = check_store(world.ledger.store, verifier)
    assert not report.ok and report.first_bad_seq == target
    assert any(f"entry #{target} does not match the leaf hash" in p for p in report.problems)
    # the stored tree itself is intact, but the start check recomputes the recent entries' leaves (issue 11.8)
    assert quick_check(world.ledger.store, verifier).startswith(f"entry #{target} is not the entry the signed")
    with ServerThread(create_app(world.ledger, follow_projection=False)) as server:
        status, report = _audit(server.url, "--vkey", _vkey(world), "--no-state")
    assert status == 1 and report["first_bad_entry"] == target
    assert f"entry #{target} was altered" in report["failure"]


def test_serve_refuses_a_store_whose_tree_no_longer_matches_its_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ledger.cli import main
    from ledger.keys import KeyPair
    from ledger.service import Ledger

    home = tmp_path / "home"
    assert main(["--home", str(home), "init"]) == 0
    db = f"sqlite:///{home / 'ledger.db'}"
    ledger = Ledger.open(db)
    ledger.start_checkpoints(KeyPair.load(home / "keys" / "log.pem"), publish_in_background=False)
    ledger.close()
    assert main(["--home", str(home), "check"]) == 0
    conn = sqlite3.connect(home / "ledger.db")
    conn.execute("DROP TRIGGER tagledger_merkle_no_update")
    conn.execute("UPDATE tagledger_merkle_nodes SET hash = zeroblob(32) WHERE id = 0")
    conn.execute("CREATE TRIGGER tagledger_merkle_no_update BEFORE UPDATE ON tagledger_merkle_nodes "
                 "BEGIN SELECT RAISE(ABORT, 'tagledger: the log is append-only (UPDATE refused)'); END")
    conn.commit()
    conn.close()
    capsys.readouterr()
    assert main(["--home", str(home), "serve", "--port", "0"]) == 2
    assert "refusing to serve" in capsys.readouterr().err
    assert main(["--home", str(home), "check", "--quiet"]) == 1
    assert "the stored leaf hash of entry #0 is damaged" in capsys.readouterr().err


# -- an entry altered in the store, the triggers put back (issue 11.8) ------------------------------------------


def _alter_entry(world: World, url: str, seq: int) -> None:
    """Entry `seq` gets another receipt time (by a microsecond) in place: its signature and hash links still
    verify; only the Merkle tree knows."""
    data = world.ledger.store.read_range(seq, seq + 1)[0].data
    update_behind_the_triggers(url, "tagledger_events_tt_main", "id", seq + 1, "data", _edit_received([data], 0)[0])


def test_the_tag_view_never_calls_an_altered_entry_authentic(world: World, store_url: str) -> None:
    """Before issue 11 the view vouched for an altered entry until someone ran `check`; now each entry's leaf
    hash must lead to the signed checkpoint's root (or, after it, equal the stored leaf hash)."""
    later = "KAL-000004"
    attach_and_deliver(world, later)  # after the latest checkpoint: not provable yet, only its stored leaf hash
    altered = {TAGS[0]: world.ledger.tag(TAGS[0]).entries[1].seq, later: world.ledger.tag(later).entries[2].seq}
    signed = world.ledger.store.latest_checkpoint().size
    assert altered[TAGS[0]] < signed <= altered[later]
    with ServerThread(create_app(world.ledger, follow_projection=False)) as server, http_client(server.url) as http:
        for tag in (*altered, TAGS[1]):
            document = http.get(f"/v1/tags/{tag}").json()
            assert document["verdict"]["authentic"] is True and document["problems"] == [], document["verdict"]
        for seq in altered.values():
            _alter_entry(world, store_url, seq)
        for tag, seq in altered.items():
            document = http.get(f"/v1/tags/{tag}").json()
            assert document["verdict"]["code"] == "integrity_failed", (tag, document["verdict"])
            assert document["verdict"]["authentic"] is False
            assert [p for p in document["problems"] if p.startswith(f"entry #{seq} ")], document["problems"]
            assert "altered" in document["verdict"]["summary"]
        untouched = http.get(f"/v1/tags/{TAGS[1]}").json()
        assert untouched["verdict"]["authentic"] is True and untouched["problems"] == []


def test_the_start_check_finds_recent_altered_entries_and_damaged_leaves(world: World, store_url: str) -> None:
    store, verifier = world.ledger.store, world.ledger.identity().verifier
    assert quick_check(store, verifier) is None
    # a stored leaf hash damaged, the entry intact: the stored tree's root (what serve checked before) is unchanged
    leaf = store.size() - 2
    update_behind_the_triggers(store_url, "tagledger_merkle_nodes", "id", leaf, "hash", bytes(32))
    assert store.tree.root(store.latest_checkpoint().size) == store.latest_checkpoint().root
    # (it is also on the path of its neighbour, #leaf - 1: that is the second problem)
    assert quick_check(store, verifier) == (f"the stored leaf hash of entry #{leaf} is damaged (the entry itself is "
                                            f"in the signed tree of size {store.latest_checkpoint().size}) (and 1 "
                                            "more problem(s))")


def test_the_start_check_reads_a_bounded_number_of_entries(world: World, store_url: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store, verifier = world.ledger.store, world.ledger.identity().verifier
    size = store.size()
    recent, blocks, block = 4, 2, 3
    assert size > 1 + recent + blocks * block
    read: list[int] = []
    real = store.read_range
    monkeypatch.setattr(store, "read_range", lambda start, end: [read.append(e.seq) or e for e in real(start, end)])
    assert quick_check(store, verifier, recent=recent, blocks=blocks, block=block) is None
    assert len(read) == len(set(read)) <= 1 + recent + blocks * block
    assert {0, *range(size - recent, size)} <= set(read)
    # an altered entry among the recent ones is always found
    read.clear()
    _alter_entry(world, store_url, size - 3)
    found = quick_check(store, verifier, recent=recent, blocks=blocks, block=block)
    assert found is not None and found.startswith(f"entry #{size - 3} is not the entry the signed checkpoint")


def test_serve_refuses_a_store_with_an_altered_entry(tmp_path: Path) -> None:
    from ledger.cli import main
    from ledger.keys import KeyPair
    from ledger.service import Ledger

    home = tmp_path / "home"
    assert main(["--home", str(home), "init"]) == 0
    db = f"sqlite:///{home / 'ledger.db'}"
    ledger = Ledger.open(db)
    try:
        ledger.start_checkpoints(KeyPair.load(home / "keys" / "log.pem"), publish_in_background=False)
        data = ledger.store.read_range(0, 1)[0].data
    finally:
        ledger.close()
    update_behind_the_triggers(db, "tagledger_events_tt_main", "id", 1, "data", _edit_received([data], 0)[0])
    done = run_tagledger("--home", str(home), "serve", "--port", "0")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip().splitlines() == [
        "tagledger: refusing to serve: entry #0 is not the entry the signed checkpoint of size 1 committed to: it "
        "was altered in the store after it was appended. Run `tagledger check` to find the altered entries."]


# -- key.weak: a key that an earlier ledger let be registered (protocol 1.14) ------------------------------------

IDENTITY_KEY = bytes.fromhex("01" + "00" * 31)
FORGED_SIGNATURE = bytes.fromhex("01" + "00" * 63)  # R = identity, S = 0: verifies on any message by IDENTITY_KEY


def test_a_log_where_an_earlier_ledger_registered_a_weak_key_fails_the_audit_at_that_entry(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(store_url, tags=6)
    try:
        attach_and_deliver(world, TAGS[0])
        with monkeypatch.context() as earlier_ledger:  # the ledger as it was before the rule
            earlier_ledger.setattr("domain.rules.is_weak_public_key", lambda raw: False)
            world.operator.add_key("kalimbi", b64url_encode(IDENTITY_KEY), time=world.tick())
            weak_seq = world.ledger.store.size() - 1
            # ... after which anyone could record for the site, with a signature made without any secret
            transport = LocalTransport(world.ledger)
            envelope = world.signer("kalimbi").envelope(
                "tag_attached", f"tag:{TAGS[1]}", transport.head(f"tag:{TAGS[1]}"),
                {"site": "kalimbi", "mineral": "tin", "mass_g": 1_000, "pit": "P9"}, time=world.tick())
            envelope["body"]["key"] = key_id(IDENTITY_KEY)
            envelope["sig"] = b64url_encode(FORGED_SIGNATURE)
            transport.submit(envelope)
        assert world.ledger.store.size() == weak_seq + 2
        # today's ledger refuses the same key
        with pytest.raises(LedgerError) as refused:
            world.operator.add_key("trader", b64url_encode(IDENTITY_KEY), time=world.tick())
        assert refused.value.rule == "key.weak"
        assert world.ledger.store.size() == weak_seq + 2

        world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
        world.ledger.start_projection(follow=False).catch_up()
        bundle = tmp_path / "ledger.zip"
        export_bundle(world.ledger, bundle)
        status, report = _audit(str(bundle), "--vkey", _vkey(world), "--no-state")
        assert status == 1, report
        assert report["first_bad_entry"] == weak_seq
        assert "key.weak" in report["failure"] and f"#{weak_seq}" in report["failure"], report["failure"]
    finally:
        world.ledger.close()
