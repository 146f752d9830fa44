"""Signed QR labels over HTTP (docs/protocol.md section 13), on SQLite and PostgreSQL.

The operator signs labels with its own key (client-side) and uploads them; the QR codes the ledger serves are
decoded with a real decoder (zxing-cpp) back to exactly the label URL, which verifies offline with
`verification.label`; every refused upload stores nothing.
"""

from __future__ import annotations

import io
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image, ImageDraw

from ledger.cli import main as cli_main
from ledger.client.labels import sign_labels
from ledger.keys import KeyPair
from ledger.labels import TABLE
from verification.encoding import b64url_decode, b64url_encode
from verification.label import LabelError, format_label_url, label_message, parse_label_url, verify_label

PROBLEM = "application/problem+json"
SVG_NS = "{http://www.w3.org/2000/svg}"
ORIGIN = "tagledger.test/log"  # the fixture's log key name
SITE = "kalando-zea"


def _base_url() -> str:
    return (os.environ.get("TAGLEDGER_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")


def _tags(n: int, prefix: str = "KAL-") -> list[str]:
    return [f"{prefix}{i:06d}" for i in range(1, n + 1)]


def _setup(live, count: int = 30) -> list[str]:
    """A site with `count` tags issued to it (KAL-000001 ...)."""
    live.register(SITE, "site")
    live.operator.issue_tags(SITE, prefix="KAL-", start=1, count=count, width=6)
    return _tags(count)


def _upload(live, labels: list[dict[str, str]]) -> Any:
    return live.http.post("/v1/labels", json={"labels": labels})


def _stored(live) -> int:
    store = live.ledger.store
    with store.datastore.transaction(commit=False) as curs:
        curs.execute(f"SELECT COUNT(*) AS n FROM {TABLE}")
        return int(curs.fetchone()["n"])


def _operator_keys(live) -> dict[str, bytes]:
    """What an offline app holds: the operator's public keys, by kid (GET /v1/orgs/{operator})."""
    operator = live.http.get("/v1/log/key").json()["operator"]
    keys = live.http.get(f"/v1/orgs/{operator}").json()["keys"]
    return {k["kid"]: b64url_decode(k["public_key"]) for k in keys}


# --- decoding --------------------------------------------------------------------------------------

_RECT = re.compile(r"M([\d.]+),([\d.]+)H([\d.]+)V([\d.]+)H([\d.]+)z")


def _render_path(d: str, modules: int, quiet: int = 4, px: int = 6) -> Image.Image:
    """Rasterise the QR path the ledger draws (one unit square per dark module, `qrcode`'s SvgPathImage)."""
    side = (modules + 2 * quiet) * px
    image = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(image)
    found = 0
    for x0, y0, x1, y1, _ in _RECT.findall(d):
        found += 1
        x0f, y0f, x1f, y1f = (float(v) for v in (x0, y0, x1, y1))
        draw.rectangle([(x0f + quiet) * px, (y0f + quiet) * px, (x1f + quiet) * px - 1, (y1f + quiet) * px - 1],
                       fill=0)
    assert found > 100, "the path is not made of module squares"
    return image


def _decode(image: Image.Image) -> str:
    """The one QR code in the image. Only QR codes are looked for, and a symbol found twice counts once: with
    every format enabled, zxing-cpp once reported two symbols in a clean render (a CI run of 2026-11-23)."""
    results = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len({r.text for r in results}) == 1, [(r.format, r.text) for r in results]
    return results[0].text


def _decode_svg(svg: str) -> str:
    root = ET.fromstring(svg.encode())
    (path,) = [p for p in root.iter(f"{SVG_NS}path") if p.get("class") == "qr"]
    assert path.get("transform") == "translate(4 4)"
    view = [float(v) for v in root.get("viewBox").split()]
    return _decode(_render_path(path.get("d"), int(view[2]) - 8))


# --- tests -----------------------------------------------------------------------------------------


def test_signed_labels_give_qr_codes_that_decode_to_the_verifiable_url(live_ledger, tmp_path: Path) -> None:
    live = live_ledger
    tags = _setup(live, 12)
    labels = sign_labels(live.root, ORIGIN, tags[:5])
    response = _upload(live, labels)
    assert response.status_code == 201, response.text
    assert response.json() == {"labels": 5, "stored": 5, "unchanged": 0}
    again = _upload(live, labels + labels[:1])  # idempotent, duplicates in one upload too
    assert again.status_code == 200, again.text
    assert again.json() == {"labels": 6, "stored": 0, "unchanged": 5}

    keys = _operator_keys(live)
    origin = live.http.get("/v1/log/key").json()["origin"]
    assert origin == ORIGIN
    for label in labels[:2]:
        tag = label["tag"]
        expected = format_label_url(_base_url(), tag, f"{label['kid']}.{label['sig']}")
        png = live.http.get(f"/v1/tags/{tag}/qr.png")
        assert png.status_code == 200, png.text
        assert png.headers["content-type"] == "image/png"
        assert _decode(Image.open(io.BytesIO(png.content))) == expected
        svg = live.http.get(f"/v1/tags/{tag}/qr.svg")
        assert svg.status_code == 200
        assert svg.headers["content-type"].startswith("image/svg+xml")
        assert tag not in svg.text  # the tag id is not in the image unless asked for
        assert _decode_svg(svg.text) == expected
        # an offline app: parse, then verify with the operator's keys, before any network call
        payload = parse_label_url(expected)
        assert (payload.tag_id, payload.base_url) == (tag, _base_url())
        verify_label(payload, origin, keys)

    captioned = live.http.get(f"/v1/tags/{tags[0]}/qr.svg", params={"caption": "1"})
    root = ET.fromstring(captioned.content)
    assert [t.text for t in root.iter(f"{SVG_NS}text")] == [tags[0]]
    assert _decode_svg(captioned.text) == _decode_svg(live.http.get(f"/v1/tags/{tags[0]}/qr.svg").text)
    # lowercase in the path is the same tag (as GET /v1/tags/{tag_id}); a bigger PNG decodes the same
    big = live.http.get(f"/v1/tags/{tags[0].lower()}/qr.png", params={"scale": 20})
    small = Image.open(io.BytesIO(live.http.get(f"/v1/tags/{tags[0]}/qr.png").content))
    assert Image.open(io.BytesIO(big.content)).size[0] == small.size[0] * 20 // 8
    assert _decode(Image.open(io.BytesIO(big.content))) == _decode(small)
    assert live.http.get(f"/v1/tags/{tags[0]}/qr.png", params={"scale": 0}).status_code == 400

    # the operator's command: signs locally with its key file and uploads (over HTTP)
    pem = tmp_path / "operator.pem"
    live.root.save(pem)
    assert cli_main(["--home", str(tmp_path / "home"), "tags", "labels", "--key", str(pem), "--prefix", "KAL-",
                     "--start", "4", "--count", "9", "--url", live.url, "--origin", ORIGIN]) == 0
    assert _stored(live) == 12
    assert cli_main(["--home", str(tmp_path / "home"), "tags", "labels", "--key", str(pem), "--tag", "KAL-000001",
                     "--url", live.url, "--origin", "another.ledger/log"]) == 2  # pinned origin differs
    png = live.http.get(f"/v1/tags/{tags[11]}/qr.png")
    verify_label(parse_label_url(_decode(Image.open(io.BytesIO(png.content)))), ORIGIN, keys)


def test_unsigned_unknown_and_invalid_tags(live_ledger) -> None:
    live = live_ledger
    tags = _setup(live, 3)
    for fmt in ("svg", "png"):
        unsigned = live.http.get(f"/v1/tags/{tags[0]}/qr.{fmt}")
        assert unsigned.status_code == 409
        assert unsigned.headers["content-type"] == PROBLEM
        problem = unsigned.json()
        assert problem["rule"] == "label.not_signed"
        assert "tagledger tags labels" in problem["detail"] and "POST /v1/labels" in problem["detail"]
        unknown = live.http.get(f"/v1/tags/FAKE-0001/qr.{fmt}")
        assert unknown.status_code == 404
        assert unknown.json()["rule"] == "tag.unknown"
        assert unknown.json()["verdict"]["code"] == "unknown"
        assert live.http.get(f"/v1/tags/a/qr.{fmt}").status_code == 400


def test_refused_uploads_store_nothing(live_ledger) -> None:
    live = live_ledger
    tags = _setup(live, 5)
    good = sign_labels(live.root, ORIGIN, tags[:3])

    def refused(labels: list[dict[str, Any]], status: int, rule: str, field: str) -> dict[str, Any]:
        response = _upload(live, labels)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert (problem["rule"], problem["field"]) == (rule, field), problem
        assert "nothing was stored" in problem["detail"]
        assert _stored(live) == 0
        return problem

    forged = dict(good[2], sig=b64url_encode(KeyPair.generate().private_key.sign(label_message(ORIGIN, tags[2]))))
    problem = refused([good[0], good[1], forged], 422, "label.signature_invalid", "/labels/2/sig")
    assert problem["errors"] == [{"index": 2, "field": "/labels/2/sig", "rule": "label.signature_invalid",
                                  "detail": problem["errors"][0]["detail"]}]
    assert problem["refused"] == 1
    # a signature over another tag id (a copied label), or for another ledger
    refused([dict(good[0], tag=tags[3])], 422, "label.signature_invalid", "/labels/0/sig")
    refused(sign_labels(live.root, "other.ledger/log", tags[:1]), 422, "label.signature_invalid", "/labels/0/sig")
    # a key that is not the operator's: a registered organisation's, or nobody's
    site_key = live.orgs[SITE].keys
    problem = refused([*good, *sign_labels(site_key, ORIGIN, tags[3:4])], 422, "label.key_unknown", "/labels/3/kid")
    assert SITE in problem["detail"]
    refused(sign_labels(KeyPair.generate(), ORIGIN, tags[:1]), 422, "label.key_unknown", "/labels/0/kid")
    # a tag that was never issued
    refused([good[0], *sign_labels(live.root, ORIGIN, ["NOPE-000001"])], 422, "label.tag_not_issued",
            "/labels/1/tag")
    # malformed entries, every problem listed
    problem = refused([dict(good[0], sig=good[0]["sig"][:-1]), {"tag": tags[1], "kid": good[1]["kid"]},
                       dict(good[2], tag="kal-000003"), dict(good[2], extra=1)], 422, "label.malformed",
                      "/labels/0/sig")
    assert [e["field"] for e in problem["errors"]] == ["/labels/0/sig", "/labels/1", "/labels/2/tag", "/labels/3"]
    assert problem["refused"] == 4
    # two different labels for one tag in one upload
    live.operator.add_key(live.operator.signer.org, (second := KeyPair.generate()).public_key)
    refused([good[0], *sign_labels(second, ORIGIN, tags[:1])], 422, "label.duplicate", "/labels/1/sig")
    # not an upload at all
    for body in ({}, {"labels": []}, {"labels": good[0]}, {"labels": good, "more": 1}, [good[0]]):
        response = live.http.post("/v1/labels", json=body)
        assert response.status_code == 400, body
        assert response.json()["rule"] == "request.invalid"
    too_many = live.http.post("/v1/labels", json={"labels": [good[0]] * 10_001})
    assert too_many.status_code == 400 and "10000" in too_many.json()["detail"]
    assert live.http.post("/v1/labels", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert _stored(live) == 0

    # stored: another (valid) signature for a labelled tag is a conflict; a printed label never changes
    assert _upload(live, good).status_code == 201
    conflict = _upload(live, [*sign_labels(second, ORIGIN, tags[3:5]), *sign_labels(second, ORIGIN, tags[1:2])])
    assert conflict.status_code == 409, conflict.text
    assert (conflict.json()["rule"], conflict.json()["field"]) == ("label.conflict", "/labels/2/sig")
    assert _stored(live) == 3  # and the two new ones in that upload were not stored either
    # a second operator key is fine; once revoked, it signs no more labels
    assert _upload(live, sign_labels(second, ORIGIN, tags[3:4])).status_code == 201
    live.operator.revoke_key(live.operator.signer.org, second.kid, "retired")
    response = _upload(live, sign_labels(second, ORIGIN, tags[4:5]))
    assert (response.status_code, response.json()["rule"]) == (422, "label.key_revoked")
    assert _stored(live) == 4
    # the stored label of the now-revoked key is still served (it was valid when the operator signed it)
    assert live.http.get(f"/v1/tags/{tags[3]}/qr.svg").status_code == 200


def test_the_labels_table_is_append_only(live_ledger) -> None:
    live = live_ledger
    tags = _setup(live, 1)
    assert _upload(live, sign_labels(live.root, ORIGIN, tags)).status_code == 201
    store = live.ledger.store
    for statement in (f"UPDATE {TABLE} SET sig = sig", f"DELETE FROM {TABLE}"):
        with pytest.raises(Exception, match="append-only"):
            with store.datastore.transaction(commit=True) as curs:
                curs.execute(statement)
    assert _stored(live) == 1


def test_a_printable_sheet_of_labels(live_ledger) -> None:
    live = live_ledger
    tags = _setup(live, 70)
    assert _upload(live, sign_labels(live.root, ORIGIN, tags[:64])).status_code == 201
    keys = _operator_keys(live)

    response = live.http.get("/v1/labels/sheet.svg", params={"prefix": "KAL-", "start": 1, "count": 24})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(response.content)
    assert (root.get("width"), root.get("height")) == ("210mm", "297mm")
    assert "@page" in "".join(s.text or "" for s in root.iter(f"{SVG_NS}style"))
    groups = [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "label"]
    assert [g.get("data-tag") for g in groups] == tags[:24]
    assert (root.get("data-columns"), root.get("data-rows")) == ("4", "6")
    single = ET.fromstring(live.http.get(f"/v1/tags/{tags[0]}/qr.svg").content)
    single_path = [p for p in single.iter(f"{SVG_NS}path") if p.get("class") == "qr"][0].get("d")
    positions = set()
    for group in groups:
        (path,) = [p for p in group.iter(f"{SVG_NS}path") if p.get("class") == "qr"]
        (text,) = list(group.iter(f"{SVG_NS}text"))
        assert text.text == group.get("data-tag")  # the tag id printed under its QR code
        url = group.get("data-url")
        payload = parse_label_url(url)
        assert payload.tag_id == group.get("data-tag")
        verify_label(payload, ORIGIN, keys)
        modules = int(max(float(v) for v in re.findall(r"[\d.]+", path.get("d"))))
        assert _decode(_render_path(path.get("d"), modules)) == url
        positions.add(group.get("transform"))
        if payload.tag_id == tags[0]:
            assert path.get("d") == single_path
    assert len(positions) == 24  # each label in its own cell

    listed = live.http.get("/v1/labels/sheet.svg", params={"tags": f"{tags[5]},{tags[2].lower()}"})
    assert listed.status_code == 200
    assert [g.get("data-tag") for g in ET.fromstring(listed.content).iter(f"{SVG_NS}g")
            if g.get("class") == "label"] == [tags[5], tags[2]]
    full = ET.fromstring(live.http.get("/v1/labels/sheet.svg", params={"prefix": "KAL-", "count": 60}).content)
    assert len([g for g in full.iter(f"{SVG_NS}g") if g.get("class") == "label"]) == 60
    assert (full.get("data-columns"), full.get("data-rows")) == ("6", "10")

    def bad(params: dict[str, Any], status: int, rule: str) -> dict[str, Any]:
        answer = live.http.get("/v1/labels/sheet.svg", params=params)
        assert answer.status_code == status, (params, answer.text)
        assert answer.headers["content-type"] == PROBLEM
        assert answer.json()["rule"] == rule, answer.json()
        return answer.json()

    bad({"prefix": "KAL-", "count": 61}, 400, "label.sheet_too_large")
    bad({"tags": ",".join(tags[:61])}, 400, "label.sheet_too_large")
    bad({}, 400, "request.invalid")
    bad({"prefix": "KAL-", "count": 2, "tags": tags[0]}, 400, "request.invalid")
    bad({"prefix": "kal_", "count": 2}, 400, "request.invalid")
    bad({"tags": "KAL-000001,x"}, 400, "tag.invalid_id")
    assert bad({"prefix": "KAL-", "start": 60, "count": 10}, 409, "label.not_signed")["tags"] == tags[64:69]
    assert bad({"tags": f"{tags[0]},NOPE-0001"}, 404, "tag.unknown")["tags"] == ["NOPE-0001"]


def test_create_app_takes_the_public_base_url(live_ledger) -> None:
    import asyncio

    import httpx

    from api.app import create_app

    live = live_ledger
    tags = _setup(live, 1)
    (label,) = sign_labels(live.root, ORIGIN, tags)
    assert _upload(live, [label]).status_code == 201
    app = create_app(live.ledger, public_base_url="https://ledger.example.org/cd/")
    assert app.state.public_base_url == "https://ledger.example.org/cd"

    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://in-process") as client:
            return await client.get(f"/v1/tags/{tags[0]}/qr.png")

    png = asyncio.run(fetch())
    assert png.status_code == 200, png.text
    url = _decode(Image.open(io.BytesIO(png.content)))
    assert url == f"https://ledger.example.org/cd/t/{tags[0]}?s={label['kid']}.{label['sig']}"
    with pytest.raises(LabelError):
        verify_label(parse_label_url(url), "another.ledger/log", _operator_keys(live))
