"""The running ledger serves its log as tlog-tiles under /tiles (docs/protocol.md section 19): the same bytes as
`tagledger tiles sync` writes, the caching headers, the audit over it, and problem+json for bad paths."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from ledger.tiles_mirror import sync_tiles
from tests.integration.conftest import ServerThread
from tests.ledger.world import World, attach_and_deliver, make_world
from verification import audit


@pytest.fixture
def served(store_url: str) -> Iterator[tuple[World, str]]:
    world = make_world(store_url, tags=100)
    try:
        for i in range(1, 91):
            attach_and_deliver(world, f"KAL-{i:06d}")  # 280 entries
        world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
        with ServerThread(create_app(world.ledger, follow_projection=False)) as server:
            yield world, server.url
    finally:
        world.ledger.close()


def test_the_server_serves_the_mirrors_bytes_and_passes_the_audit(served: tuple[World, str], tmp_path: Path) -> None:
    world, url = served
    sync_tiles(world.ledger.store, world.ledger.identity(), tmp_path / "tiles")
    published = sorted(str(p.relative_to(tmp_path / "tiles")) for p in (tmp_path / "tiles").rglob("*")
                       if p.is_file() and not p.name.startswith("."))
    assert published == ["checkpoint", "tile/0/000", "tile/0/001.p/24", "tile/1/000.p/1", "tile/entries/000",
                         "tile/entries/001.p/24"]
    with httpx.Client(base_url=url + "/tiles", trust_env=False) as http:
        for path in published:
            answer = http.get("/" + path)
            assert answer.status_code == 200, (path, answer.text)
            assert answer.content == (tmp_path / "tiles" / path).read_bytes(), path
        assert http.get("/checkpoint").headers["content-type"] == "text/plain; charset=utf-8"
        assert http.get("/checkpoint").headers["cache-control"] == "no-cache"
        assert http.get("/tile/0/000").headers["cache-control"] == "public, max-age=31536000, immutable"
        assert http.get("/tile/0/001.p/24").headers["cache-control"] == "public, max-age=60"
        assert http.get("/tile/0/001.p/7").content == (tmp_path / "tiles/tile/0/001.p/24").read_bytes()[:7 * 32]
        bundle = http.get("/tile/entries/000", headers={"Accept-Encoding": "gzip"})
        assert bundle.headers["content-encoding"] == "gzip"
        assert bundle.content == (tmp_path / "tiles/tile/entries/000").read_bytes()

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = audit.main([url + "/tiles", "--vkey", world.ledger.identity().vkey, "--no-state", "--json",
                             "--no-progress", "--workers", "1"])
    report = json.loads(out.getvalue())
    assert status == 0, report
    assert any(step["step"] == "tiles" for step in report["steps"]), report


@pytest.mark.parametrize("path, status, rule", [
    ("/tile/0/001", 404, "tiles.not_found"),             # not full yet
    ("/tile/0/001.p/25", 404, "tiles.not_found"),        # beyond the tree
    ("/tile/2/000.p/1", 404, "tiles.not_found"),
    ("/tile/entries/002", 404, "tiles.not_found"),
    ("/tagledger/entries/000", 404, "tiles.not_found"),  # every entry fits the specification's bundle
    ("/tile/0/0", 400, "tiles.path"),
    ("/tile/0/x000/000", 400, "tiles.path"),
    ("/tile/0/000.p/0", 400, "tiles.path"),
    ("/tile/0/000.p/256", 400, "tiles.path"),
    ("/tile/01/000", 400, "tiles.path"),
    ("/tile/8/000", 400, "tiles.path"),
    ("/tile/entries/abc", 400, "tiles.path"),
])
def test_bad_or_absent_tiles_are_problems(served: tuple[World, str], path: str, status: int, rule: str) -> None:
    _, url = served
    with httpx.Client(base_url=url + "/tiles", trust_env=False) as http:
        answer = http.get(path)
    assert answer.status_code == status, answer.headers
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["rule"] == rule
