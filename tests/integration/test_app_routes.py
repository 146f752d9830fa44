"""The phone app as the server delivers it (api/routes_app.py), over real HTTP, on SQLite and PostgreSQL: its files
(gzip, ETag, the service worker, the catalogue), and GET /v1/orgs/{org}/custody, what a phone keeps offline."""

from __future__ import annotations

import json

from api.i18n import CATALOGUE_DIR
from api.routes_app import app_files

PROBLEM = "application/problem+json"


def test_the_app_files(live_ledger) -> None:
    http = live_ledger.http
    assert http.get("/app", follow_redirects=False).headers["location"] == "/app/"
    shell = http.get("/app/", headers={"Accept-Encoding": "gzip"})
    assert shell.status_code == 200 and shell.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/app/js/main.js">' in shell.text and '<meta charset="utf-8">' in shell.text
    assert "default-src 'self'" in shell.headers["content-security-policy"]
    assert shell.headers["cache-control"] == "no-cache"
    # a phone on a slow network revalidates: 304, no body
    again = http.get("/app/js/protocol.js", headers={"If-None-Match": http.get("/app/js/protocol.js").headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    module = http.get("/app/js/protocol.js", headers={"Accept-Encoding": "gzip"})
    assert module.headers["content-encoding"] == "gzip" and module.headers["content-type"].startswith("text/javascript")
    worker = http.get("/app/sw.js")
    assert worker.headers["service-worker-allowed"] == "/app/"
    assert f'const VERSION = "{app_files().version}"' in worker.text
    # the catalogue is the verification page's, file for file
    for lang in ("en", "fr", "sw"):
        assert http.get(f"/app/i18n/{lang}.json").content == (CATALOGUE_DIR / f"{lang}.json").read_bytes()
    assert {"code": "sw", "name": "Kiswahili"} in http.get("/app/i18n/languages.json").json()
    wasm = http.get("/app/vendor/zxing-wasm/reader/zxing_reader.wasm")
    assert wasm.headers["content-type"] == "application/wasm" and wasm.content[:4] == b"\0asm"
    manifest = http.get("/app/manifest.webmanifest")
    assert manifest.headers["content-type"] == "application/manifest+json"
    assert json.loads(manifest.content)["start_url"] == "/app/"
    for missing in ("/app/nothing.js", "/app/../api/app.py", "/app/%2e%2e/pyproject.toml", "/app/sw.js/x"):
        answer = http.get(missing)
        assert answer.status_code == 404 and answer.headers["content-type"] == PROBLEM, missing


def test_an_organisations_custody_for_its_phone(live_ledger) -> None:
    site = live_ledger.register("kal-site", "site")
    trader = live_ledger.register("bukavu-trader", "trader")
    live_ledger.operator.issue_tags("kal-site", prefix="APP-", start=1, count=4)
    site.attach("APP-000001", mineral="tin", mass_g=50_000, pit="P1")
    site.attach("APP-000002", mineral="tin", mass_g=40_000, pit="P1")
    site.dispatch("APP-000002", "bukavu-trader")
    live_ledger.ledger.projection.catch_up()

    mine = live_ledger.http.get("/v1/orgs/kal-site/custody", params={"tags": "app-000002,APP-000009"}).json()
    assert [s["tag"] for s in mine["held"]] == ["APP-000001"]
    assert [s["tag"] for s in mine["sent"]] == ["APP-000002"] and mine["incoming"] == []
    assert [s["tag"] for s in mine["asked"]] == ["APP-000002"]  # a tag never issued is not there
    # the two unattached tags share their stream's head: the tags_issued event, which an attachment must name
    [group] = mine["issued"]
    assert group["tags"] == ["APP-000003", "APP-000004"]
    assert group["head"]["hash"] == live_ledger.head("tag:APP-000003") == live_ledger.head("tag:APP-000004")
    assert mine["held"][0]["head"]["hash"] == live_ledger.head("tag:APP-000001")

    theirs = live_ledger.http.get("/v1/orgs/bukavu-trader/custody").json()
    assert [s["tag"] for s in theirs["incoming"]] == ["APP-000002"] and theirs["held"] == [] == theirs["issued"]
    assert theirs["projection_position"] == live_ledger.entries()
    del trader

    unknown = live_ledger.http.get("/v1/orgs/nobody/custody")
    assert unknown.status_code == 404 and unknown.json()["rule"] == "org.unknown"
    bad = live_ledger.http.get("/v1/orgs/kal-site/custody", params={"tags": "not a tag"})
    assert bad.status_code == 400 and bad.json()["field"] == "/tags"
    for url, field in (("/v1/orgs/kal%00site/custody", "/org_id"), ("/v1/orgs/kal-site/custody?tags=A%0AB", "/tags")):
        refused = live_ledger.http.get(url)
        assert refused.status_code == 400 and refused.headers["content-type"] == PROBLEM, url
        assert (refused.json()["rule"], refused.json()["field"]) == ("request.invalid", field)
        assert "control character" in refused.json()["detail"]
