"""The log as static tiles (docs/protocol.md section 19), end to end: `tagledger tiles sync DIR` mirrors a real
ledger (SQLite and PostgreSQL) into a directory, a real nginx serves it on a loopback port with the server block
of docs/nginx-tiles.conf, and `tagledger audit http://127.0.0.1:PORT` checks the log from nginx alone. A tile or
bundle altered on disk fails the audit, named."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ledger.cli import main as cli_main
from ledger.tiles_mirror import sync_tiles
from tests.ledger.world import World, attach_and_deliver, make_world
from tests.nginx import serve_directory
from verification import audit
from verification.tiles import Tile, decode_bundle, encode_bundle

TAGS = 110


def _audit(*argv: str) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = audit.main([*argv, "--json", "--no-progress", "--workers", "1"])
    return status, json.loads(out.getvalue())


def _world(url: str, delivered: int) -> World:
    world = make_world(url, tags=TAGS)
    for i in range(1, delivered + 1):
        attach_and_deliver(world, f"KAL-{i:06d}")
    world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
    return world


def _sync(world: World, directory: Path):  # noqa: ANN202
    world.ledger.publish_checkpoint()
    return sync_tiles(world.ledger.store, world.ledger.identity(), directory)


def _files(directory: Path) -> dict[str, int]:
    """Every published file (relative path -> inode), leaving out the sync's lock file."""
    return {str(p.relative_to(directory)): p.stat().st_ino for p in directory.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


@pytest.fixture
def world(store_url: str) -> Iterator[World]:
    w = _world(store_url, delivered=100)  # 310 entries: a full level-0 tile, partial tiles on two levels
    try:
        yield w
    finally:
        w.ledger.close()


def test_the_mirror_served_by_nginx_passes_the_audit_and_syncs_incrementally(world: World, tmp_path: Path) -> None:
    tiles, state = tmp_path / "tiles", tmp_path / "state"
    summary = _sync(world, tiles)
    size = world.ledger.store.size()
    assert (summary.previous_size, summary.size) == (0, size) and size == 310
    assert set(_files(tiles)) == {"checkpoint", "tile/0/000", "tile/0/001.p/54", "tile/1/000.p/1",
                                  "tile/entries/000", "tile/entries/001.p/54"}
    assert (tiles / "checkpoint").read_text() == world.ledger.store.latest_checkpoint().note

    with serve_directory(tiles) as url:
        status, report = _audit(url, "--vkey", world.ledger.identity().vkey, "--state-dir", str(state))
        assert status == 0, report
        steps = {step["step"]: step["result"] for step in report["steps"]}
        assert steps["tiles"] == ("3 hash tile(s) on 2 level(s) and 2 entry bundle(s) (0 in tagledger's own "
                                  "encoding) agree with the entries")
        assert report["size"] == 310
        assert any("no custody projection" in w for w in report["warnings"])

        # the headers tlog-tiles asks for: a mutable checkpoint, immutable full tiles, compressed bundles
        with httpx.Client(base_url=url, trust_env=False) as http:
            checkpoint = http.get("/checkpoint")
            assert checkpoint.headers["content-type"] == "text/plain; charset=utf-8"
            assert checkpoint.headers["cache-control"] == "no-cache"
            full = http.get("/tile/0/000")
            assert full.headers["content-type"] == "application/octet-stream" and len(full.content) == 8192
            assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert http.get("/tile/0/001.p/54").headers["cache-control"] == "public, max-age=60"
            bundle = http.get("/tile/entries/000", headers={"Accept-Encoding": "gzip"})
            assert bundle.headers["content-encoding"] == "gzip"
            assert bundle.content == (tiles / "tile/entries/000").read_bytes()
            assert http.get("/.tagledger-sync.lock").status_code == 404

        # more entries: only the new tiles are written, the full ones stay as they were
        before = _files(tiles)
        for i in range(101, 110):
            attach_and_deliver(world, f"KAL-{i:06d}")
        summary = _sync(world, tiles)
        assert (summary.previous_size, summary.size) == (310, 337)
        after = _files(tiles)
        assert {p: after[p] for p in ("tile/0/000", "tile/entries/000")} == \
            {p: before[p] for p in ("tile/0/000", "tile/entries/000")}
        assert set(after) - set(before) == {"tile/0/001.p/81", "tile/entries/001.p/81"}
        assert after["checkpoint"] != before["checkpoint"]
        assert _sync(world, tiles).tiles == 0  # nothing new: nothing written

        status, report = _audit(url, "--state-dir", str(state))
        assert status == 0, report
        assert any(s["step"] == "consistency" and "reproduce the kept checkpoint's root" in s["result"]
                   for s in report["steps"]), report
        assert not report["warnings"][1:], report  # the key is the one remembered; only the projection warning

    # the partial tiles of the earlier sizes go once their full tile exists
    kept = (tiles / "checkpoint").read_bytes()  # size 337
    for i in range(110, 111):
        attach_and_deliver(world, f"KAL-{i:06d}")
    world.operator.issue_tags("kalimbi", prefix="KAL-", start=TAGS + 1, count=200, time=world.tick())
    for i in range(TAGS + 1, TAGS + 61):
        attach_and_deliver(world, f"KAL-{i:06d}")
    summary = _sync(world, tiles)
    assert summary.size == 521 and summary.removed == 4
    assert not (tiles / "tile/0/001.p").exists() and not (tiles / "tile/entries/001.p").exists()
    assert {"tile/0/001", "tile/0/002.p/9", "tile/1/000.p/2", "tile/entries/001"} <= set(_files(tiles))
    with serve_directory(tiles) as url:
        status, report = _audit(url, "--state-dir", str(state))
        assert status == 0, report
        # a client holding the checkpoint of 337 finds its partial tiles gone and reads the full ones instead
        (tiles / "checkpoint").write_bytes(kept)
        status, report = _audit(url, "--no-state", "--vkey", world.ledger.identity().vkey)
        assert status == 0 and report["size"] == 337, report


# -- tampering ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A ledger of 310 entries (SQLite) mirrored once; each test alters a copy."""
    home = tmp_path_factory.mktemp("mirror")
    world = _world(f"sqlite:///{home / 'ledger.sqlite'}", delivered=100)
    try:
        _sync(world, home / "tiles")
        yield home / "tiles", world.ledger.identity().vkey
    finally:
        world.ledger.close()


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_entry(path: Path, index: int, count: int) -> None:
    """Change the last digit of entry `index`'s receipt time inside the bundle (same length, still canonical JSON,
    still in order: the replay accepts it, only the Merkle root tells)."""
    entries = decode_bundle(path.read_bytes(), count)
    entry = entries[index]
    at = entry.index(b'"received":"') + len(b'"received":"') + 25  # the last digit of the microseconds
    entries[index] = entry[:at] + (b"1" if entry[at:at + 1] != b"1" else b"2") + entry[at + 1:]
    path.write_bytes(encode_bundle(entries))


ALTERATIONS = {
    "level-0 tile": (lambda d: _flip(d / "tile/0/000", 32 * 17 + 5),
                     "tile/0/000 was altered: hash #17 is not the leaf hash of entry #17"),
    "partial level-0 tile": (lambda d: _flip(d / "tile/0/001.p/54", 32 * 3),
                             "tile/0/001.p/54 was altered: hash #3 is not the leaf hash of entry #259"),
    "level-1 tile": (lambda d: _flip(d / "tile/1/000.p/1", 0),
                     "tile/1/000.p/1 was altered: hash #0 is not the hash of entries #0 to #255"),
    "missing level-1 tile": (lambda d: (d / "tile/1/000.p/1").unlink(), "tile/1/000.p/1 is not served"),
    "truncated tile": (lambda d: (d / "tile/0/000").write_bytes((d / "tile/0/000").read_bytes()[:-1]),
                       "tile/0/000 was altered: it has 8191 bytes, not 8192"),
    "entry in a bundle": (lambda d: _edit_entry(d / "tile/entries/000", 200, 256),
                          "entry #200 (in tile/entries/000) was altered"),
    "malformed bundle": (lambda d: (d / "tile/entries/001.p/54").write_bytes(
                             (d / "tile/entries/001.p/54").read_bytes() + b"\x00"),
                         "tile/entries/001.p/54 was altered: it is not a bundle of 54 entries"),
    "missing bundle": (lambda d: (d / "tile/entries/000").unlink(),
                       "neither tile/entries/000 nor tagledger/entries/000 is served"),
}


@pytest.mark.parametrize("what", ALTERATIONS)
def test_a_tile_altered_on_disk_fails_the_audit_and_is_named(mirror: tuple[Path, str], tmp_path: Path,
                                                              what: str) -> None:
    source, vkey = mirror
    tiles = tmp_path / "tiles"
    shutil.copytree(source, tiles)
    alter, named = ALTERATIONS[what]
    alter(tiles)
    with serve_directory(tiles) as url:
        status, report = _audit(url, "--vkey", vkey, "--no-state")
    assert status == 1, report
    assert named in report["failure"], report["failure"]


def test_the_untouched_copy_passes(mirror: tuple[Path, str], tmp_path: Path) -> None:
    """The control for the tampering tests: the same copy, unaltered, passes."""
    source, vkey = mirror
    shutil.copytree(source, tmp_path / "tiles")
    with serve_directory(tmp_path / "tiles") as url:
        status, report = _audit(url, "--vkey", vkey, "--no-state")
    assert status == 0, report


# -- entries too long for the specification's bundle ---------------------------------------------------------


def test_a_bundle_with_an_entry_over_64_kib_is_served_in_tagledgers_encoding(tmp_path: Path) -> None:
    bags = 700
    world = make_world(f"sqlite:///{tmp_path / 'ledger.sqlite'}", tags=bags)
    try:
        world.operator.issue_tags("kalimbi", prefix="LOT-K", start=1, count=1, time=world.tick())
        inputs = [f"KAL-{i:06d}" for i in range(1, bags + 1)]
        for tag in inputs:
            world.clients["kalimbi"].attach(tag, mineral="tin", mass_g=1000, pit="P1", time=world.tick())
        world.clients["kalimbi"].merge("LOT-K000001", inputs, mass_g=bags * 1000, time=world.tick())
        lot_seq = world.ledger.store.size() - 1
        assert len(world.ledger.store.read_range(lot_seq, lot_seq + 1)[0].data) > 65_535
        world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
        tiles = tmp_path / "tiles"
        _sync(world, tiles)
        holder = Tile(0, lot_seq // 256, world.ledger.store.size() % 256 or 256)
        assert (tiles / holder.tagledger_bundle_path).exists() and not (tiles / holder.bundle_path).exists()
        assert (tiles / "tile/entries/000").exists()  # the other bundles are the specification's
        with serve_directory(tiles) as url:
            status, report = _audit(url, "--vkey", world.ledger.identity().vkey, "--no-state")
        assert status == 0, report
        assert "(1 in tagledger's own encoding)" in {s["step"]: s["result"] for s in report["steps"]}["tiles"]
    finally:
        world.ledger.close()


# -- a sync while the service writes, and the command line ---------------------------------------------------


def test_syncs_while_the_service_writes_always_leave_a_whole_mirror(tmp_path: Path) -> None:
    world = _world(f"sqlite:///{tmp_path / 'ledger.sqlite'}", delivered=0)
    tiles = tmp_path / "tiles"
    done = threading.Event()
    sizes: list[int] = []
    errors: list[BaseException] = []

    def cron() -> None:
        try:
            while not done.is_set():
                sizes.append(sync_tiles(world.ledger.store, world.ledger.identity(), tiles).size)
        except BaseException as error:  # reported by the test
            errors.append(error)

    thread = threading.Thread(target=cron)
    thread.start()
    try:
        try:
            for i in range(1, 101):
                attach_and_deliver(world, f"KAL-{i:06d}")
                world.ledger.publish_checkpoint()
        finally:
            done.set()
            thread.join(timeout=60)
        assert not errors, errors
        assert len(set(sizes)) > 2 and sizes == sorted(sizes), sizes
        _sync(world, tiles)
        with serve_directory(tiles) as url:
            status, report = _audit(url, "--vkey", world.ledger.identity().vkey, "--no-state")
        assert status == 0, report
        assert report["size"] == world.ledger.store.size() == 310
    finally:
        world.ledger.close()


def test_the_tiles_sync_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    assert cli_main(["--home", str(home), "init"]) == 0
    tiles = tmp_path / "tiles"
    assert cli_main(["--home", str(home), "tiles", "sync", str(tiles)]) == 0
    out = capsys.readouterr().out
    assert f"Mirrored the log into {tiles}: checkpoint of size 1 (was 0)" in out, out
    assert cli_main(["--home", str(home), "tiles", "sync", str(tiles)]) == 0
    assert "is up to date" in capsys.readouterr().out
    with serve_directory(tiles) as url:
        assert cli_main(["audit", url + "/", "--no-state", "--workers", "0", "--no-progress"]) == 0
    assert "RESULT: OK" in capsys.readouterr().out

    # a directory that mirrors another log is refused in one line
    other = tmp_path / "other"
    assert cli_main(["--home", str(other), "init"]) == 0
    capsys.readouterr()
    assert cli_main(["--home", str(other), "tiles", "sync", str(tiles)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tagledger: ") and "is not a checkpoint of this log" in err and err.count("\n") == 1, err
