"""GET /t/{tag_id}: the verification page for people, over real HTTP, on both backends.

The custody story is tests/integration/page_world.py. These tests read the HTML as text (what the server
sends); tests/browser/ checks what a person sees in a real browser.
"""

from __future__ import annotations

import gzip
import html
import re
import time

import httpx
import pytest

from tests.integration.page_world import (
    ACTION_DONE,
    ACTION_FAILED,
    COOP_NAME,
    DISMISSED,
    FLAGGED,
    IN_CUSTODY,
    INCIDENT_SUMMARY,
    LOT,
    MERGED_A,
    MERGED_B,
    MIXED_LOT,
    OTHER_SITE_NAME,
    QUIET,
    RED_OPEN,
    RED_REMEDIATED,
    REFINER_NAME,
    SITE_NAME,
    TRADER_NAME,
    UNKNOWN,
    VOIDED,
    build_page_world,
    build_risk_story,
)
from verification.label import sign_label

EN = {"accept-language": "en"}
FR = {"accept-language": "fr-CD,fr;q=0.9,en;q=0.5"}


@pytest.fixture
def world(live_ledger):
    build_page_world(live_ledger)
    # every event covered by a signed checkpoint, so that each has an inclusion proof on the page
    live_ledger.ledger.publish_checkpoint()
    return live_ledger


def page(live, tag: str, *, headers: dict[str, str] | None = None, status: int = 200, **params: str) -> str:
    response = live.http.get(f"/t/{tag}", headers=headers or EN, params=params or None)
    assert response.status_code == status, (tag, params, response.status_code, response.text[:500])
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    return response.text


INLINE = r"</?(?:a|strong|span|code|time|b|em)\b[^>]*>"


def text_of(document: str) -> str:
    """The visible text, roughly: inline tags dropped, others made spaces, entities decoded, white space (not
    the no-break spaces) collapsed."""
    body = re.sub(r"<style>.*?</style>", " ", document, flags=re.S)
    body = re.sub(r"<[^>]+>", " ", re.sub(INLINE, "", body))
    return re.sub(r"[ \t\r\n]+", " ", html.unescape(body)).strip()


def verdict_of(document: str) -> str:
    match = re.search(r'<section class="box (\w+)" id="verdict"[^>]*>(.*?)</section>', document, re.S)
    assert match, "no verdict box"
    return match.group(1) + ": " + text_of(match.group(2))


# ------------------------------------------------------------------------------------------------


def test_authentic_tag_in_custody(world) -> None:
    response = world.http.get(f"/t/{IN_CUSTODY}", headers={**EN, "accept-encoding": "identity"})
    assert response.status_code == 200
    headers = response.headers
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "Accept-Language" in headers["vary"]
    assert headers["content-language"] == "en"
    assert headers["cache-control"] == "public, max-age=30"
    assert "default-src 'none'" in headers["content-security-policy"]
    document = response.text
    assert document.startswith("<!doctype html>")
    assert '<html lang="en">' in document
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in document
    # one small, self-contained page: no script, no external resource
    assert "<script" not in document.lower()
    assert not re.search(r'(src|href)="(https?:)?//', document)
    style = re.search(r"<style>(.*?)</style>", document, re.S).group(1)
    assert len(style.encode()) < 10_000
    assert len(response.content) < 40_000

    assert verdict_of(document) == (
        f"ok: ✓ Authentic — in the custody of {COOP_NAME} Last recorded mass: 49.750\u00a0kg"
    )
    visible = text_of(document)
    json_doc = world.http.get(f"/v1/tags/{IN_CUSTODY}").json()
    origin = text_of(re.search(r'<section id="origin">(.*?)</section>', document, re.S).group(1))
    attached_on = json_doc["origins"][0]["attached_at"][:10]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", attached_on)
    assert origin == (f"Origin Mine site {SITE_NAME} Mineral tin (cassiterite) Pit Pit 7 Tagged on {attached_on} "
                      "GPS -2.1234567, 28.7654321")

    rows = re.findall(r'<li data-seq="(\d+)">(.*?)</li>', document, re.S)
    assert [int(seq) for seq, _ in rows] == [e["seq"] for e in json_doc["events"]]
    timeline = [text_of(row) for _, row in rows]
    date = json_doc["events"][0]["time"][:10]
    assert timeline[0].startswith(date) and timeline[0].endswith(f"Tag issued to {SITE_NAME}")
    assert timeline[1].startswith("49.800\u00a0kg") and f"Put on a bag of ore at {SITE_NAME}" in timeline[1]
    assert "pit: Pit 7" in timeline[1] and "-2.1234567, 28.7654321" in timeline[1]
    assert timeline[2].startswith("49.800\u00a0kg") and f"Dispatched by {SITE_NAME} to {COOP_NAME}" in timeline[2]
    assert "at road N2" in timeline[2]
    assert timeline[3].startswith("49.750\u00a0kg") and f"Received by {COOP_NAME}" in timeline[3]
    assert "at Nyabibwe warehouse" in timeline[3]
    assert "in the custody of" in visible and "label" not in visible.lower()  # no ?s=: nothing about labels

    # check it yourself: every hash, signer, signature and proof of the JSON document is on the page
    assert '<details><summary><h2>Check it yourself</h2></summary>' in document
    for event in json_doc["events"]:
        section = re.search(rf'<details id="e{event["seq"]}">(.*?)</details>', document, re.S).group(1)
        assert event["hash"] in section
        assert event["envelope"]["sig"] in section
        assert event["envelope"]["body"]["key"] in section
        assert f"<dd>{event['log_index']}</dd>" in section
        assert event["inclusion_proof"] is not None
        for proof_hash in event["inclusion_proof"]["hashes"]:
            assert proof_hash in section
    assert html.escape(json_doc["log"]["checkpoint"], quote=False).strip() in document
    for kid, key in json_doc["keys"].items():
        assert kid in document and key["public_key"] in document
    for href in (f"/v1/tags/{IN_CUSTODY}", "/v1/log/key", "/v1/log/checkpoint"):
        assert f'href="{href}"' in document
        assert world.http.get(href).status_code == 200
    assert f"tagledger audit {world.url} --tag {IN_CUSTODY}" in document
    # compressed for slow connections
    raw = httpx.get(f"{world.url}/t/{IN_CUSTODY}", headers={"accept-encoding": "gzip", **EN}, trust_env=False)
    assert raw.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in raw.headers["vary"]
    with httpx.stream("GET", f"{world.url}/t/{IN_CUSTODY}", headers={"accept-encoding": "gzip", **EN},
                      trust_env=False) as stream:
        compressed = b"".join(stream.iter_raw())
    assert gzip.decompress(compressed).decode() == raw.text
    assert len(compressed) < 8_000, len(compressed)
    plain = httpx.get(f"{world.url}/t/{IN_CUSTODY}", headers={"accept-encoding": "identity", **EN},
                      trust_env=False)
    assert "content-encoding" not in plain.headers and plain.text == raw.text


def test_finished_tags_consumed_merged_voided(world) -> None:
    lot = page(world, LOT)
    assert verdict_of(lot) == (f"info: ✓ Authentic — consumed at {REFINER_NAME} RMI smelter ID CID001898 The ore "
                               "was processed at this smelter/refiner; the tag's life is over. Last recorded "
                               "mass: 22.400\u00a0kg")
    # several origins: a summary by site, and each bag linked to its own page
    origin = text_of(re.search(r'<section id="origin">(.*?)</section>', lot, re.S).group(1))
    assert f"Ore from 2 bags, tagged at: Mine site Mineral Bags Tagged on {SITE_NAME}" in origin
    relations = re.search(r'<section id="lot">(.*?)</section>', lot, re.S).group(1)
    assert text_of(relations) == f"Lot This lot was formed from 2 tags: {MERGED_A} {MERGED_B}"
    for bag in (MERGED_A, MERGED_B):
        assert f'<a href="/t/{bag}">{bag}</a>' in relations
    timeline = [text_of(row) for row in re.findall(r'<li data-seq="\d+">(.*?)</li>', lot, re.S)]
    assert len(timeline) == 5 and all(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", row) for row in timeline)
    assert "Lot formed by Goma processing plant from 2 tags" in timeline[1] and "22.500\u00a0kg" in timeline[1]
    assert f"Dispatched by Goma processing plant to {REFINER_NAME}" in timeline[2]
    assert f"Received by {REFINER_NAME}" in timeline[3] and "22.400\u00a0kg" in timeline[3]
    assert f"Consumed at {REFINER_NAME}" in timeline[4] and "product: tin ingot" in timeline[4]

    bag = page(world, MERGED_A)
    assert verdict_of(bag).startswith(f"info: ✓ Authentic — merged into lot {LOT}")
    assert f'<a href="/t/{LOT}">{LOT}</a>' in bag
    rows = [text_of(row) for row in re.findall(r'<li data-seq="\d+">(.*?)</li>', bag, re.S)]
    assert rows[-1].endswith(f"Merged by Goma processing plant into lot {LOT}")  # the lot's mass is not the bag's
    assert "10.000\u00a0kg" in rows[-2]

    document = page(world, VOIDED)
    assert verdict_of(document) == "bad: ✕ VOIDED (stolen) — do not accept material bearing this tag " \
                                   "Last recorded mass: 9.000\u00a0kg"
    last = text_of(re.findall(r'<li data-seq="\d+">(.*?)</li>', document, re.S)[-1])
    assert last.endswith(f"Voided by {SITE_NAME}: stolen note: taken at the roadblock")
    fr = page(world, VOIDED, headers=FR)
    assert verdict_of(fr).startswith("bad: ✕ ANNULÉE (volée) — n'acceptez pas de minerai portant cette étiquette")


def test_unknown_and_malformed_tags(world) -> None:
    unknown = page(world, UNKNOWN, status=404)
    assert verdict_of(unknown) == (f"bad: ✕ UNKNOWN TAG — never issued by this ledger No tag {UNKNOWN} was ever "
                                   "issued. Treat the material as untraced. Check that you typed the number "
                                   "exactly as printed on the tag.")
    assert "<title>UNKNOWN TAG" in unknown and '<html lang="en">' in unknown
    fr = page(world, UNKNOWN, headers=FR, status=404)
    assert "Traitez le minerai comme non tracé" in fr and '<html lang="fr">' in fr
    assert "ÉTIQUETTE INCONNUE" in fr

    assert "Not a tag number" in page(world, "x", status=400)
    for bad in ("%3Cscript%3Ealert(1)%3C%2Fscript%3E", "a/b/c", "KAL_000001", "%C3%A9t%C3%A9-1", "%00AB",
                "A" * 41, "-AB", ""):
        document = page(world, bad, status=400)
        assert "<script>" not in document
    assert "Invalid address" in page(world, IN_CUSTODY, status=400, as_of="abc")
    assert "Invalid address" in page(world, IN_CUSTODY, status=400, as_of="0")
    assert "Invalid address" in page(world, IN_CUSTODY, status=400, as_of="9" * 30)
    # lower case is normalised, like GET /v1/tags/{id}
    assert verdict_of(page(world, IN_CUSTODY.lower())).startswith("ok: ✓ Authentic")
    # the "check another tag" form: /t/?tag=…
    response = world.http.get("/t/", params={"tag": " kal-000004 "})
    assert response.status_code == 303 and response.headers["location"] == f"/t/{VOIDED}"
    response = world.http.get("/t", params={"tag": "<b>", "lang": "fr"})
    assert response.status_code == 303 and response.headers["location"] == "/t/%3CB%3E?lang=fr"
    assert "Ce n'est pas un numéro d'étiquette" in text_of(world.http.get(response.headers["location"]).text)


def test_as_of_shows_history(world) -> None:
    json_doc = world.http.get(f"/v1/tags/{IN_CUSTODY}").json()
    dispatched = json_doc["events"][2]["seq"]
    document = page(world, IN_CUSTODY, as_of=str(dispatched + 1))
    verdict = verdict_of(document)
    assert verdict.startswith(f"ok: ✓ Authentic — in transit from {SITE_NAME} to {COOP_NAME}")
    assert f"this tag as the public log stood after its first {dispatched + 1} entries" in text_of(document)
    assert len(re.findall(r'<li data-seq="\d+">', document)) == 3
    assert f'href="/v1/tags/{IN_CUSTODY}?as_of={dispatched + 1}"' in document
    assert world.http.get(f"/t/{IN_CUSTODY}", params={"as_of": dispatched}).headers["cache-control"] == \
        "public, max-age=3600"  # history does not change
    not_yet = world.http.get(f"/t/{IN_CUSTODY}", params={"as_of": 3})
    assert not_yet.status_code == 404 and "never issued" in not_yet.text  # not issued yet at that point
    assert not_yet.headers["cache-control"] == "public, max-age=30"


def test_french_english_and_swahili(world) -> None:
    # Accept-Language with q-values decides (more cases, without a server, in tests/unit/test_page_i18n.py)
    for accept, expected in (("fr-CD,fr;q=0.9,en;q=0.5", "fr"), ("en;q=0.5, fr;q=0.8", "fr"), ("fr;q=0, *", "en"),
                             ("sw, de", "sw"), ("de, rw", "en"), ("", "en")):
        response = world.http.get(f"/t/{IN_CUSTODY}", headers={"accept-language": accept})
        assert response.status_code == 200
        assert response.headers["content-language"] == expected, accept
        assert f'<html lang="{expected}">' in response.text
    fr = page(world, IN_CUSTODY, headers=FR)
    assert verdict_of(fr) == (f"ok: ✓ Authentique — sous la garde de {COOP_NAME} "
                              "Dernière masse enregistrée\u00a0: 49,750\u00a0kg")
    visible = text_of(fr)
    for words in ("Origine", "Site minier", "étain (cassiterite)", "Étiqueté le",
                  "Chaîne de possession, telle qu'elle s'est déroulée", f"Étiquette émise pour {SITE_NAME}",
                  f"Posée sur un sac de minerai à {SITE_NAME}", "49,800\u00a0kg",
                  f"Expédiée par {SITE_NAME} à {COOP_NAME}", f"Reçue par {COOP_NAME}", "Vérifiez vous-même",
                  "puits\u00a0: Pit 7"):
        assert words in visible, words
    assert not re.search(r"\bAuthentic\b", visible) and "49.800" not in visible  # (Authenticité is French)
    # ?lang= overrides the header, both ways; the other language is one link away
    assert '<html lang="en">' in page(world, IN_CUSTODY, headers=FR, lang="en")
    en_forced = world.http.get(f"/t/{IN_CUSTODY}?lang=fr", headers=EN)
    assert '<html lang="fr">' in en_forced.text and en_forced.headers["content-language"] == "fr"
    assert f'href="/t/{IN_CUSTODY}?lang=en"' in fr and f'href="/t/{IN_CUSTODY}?lang=sw"' in fr
    assert f'href="/t/{IN_CUSTODY}?lang=fr"' in page(world, IN_CUSTODY)
    swahili = page(world, IN_CUSTODY, lang="sw")
    assert verdict_of(swahili) == (f"ok: ✓ Halisi — iko mikononi mwa {COOP_NAME} "
                                   "Uzito wa mwisho uliorekodiwa: 49.750\u00a0kg")
    assert f"Imetumwa na {SITE_NAME} kwenda {COOP_NAME}" in text_of(swahili)
    assert f'href="/t/{IN_CUSTODY}?lang=en"' in swahili and f'href="/t/{IN_CUSTODY}?lang=sw"' not in swahili
    assert '<html lang="en">' in page(world, IN_CUSTODY, lang="xx")  # unknown: the header decides
    # an explicit choice sticks on links to other tags
    lot_fr = page(world, LOT, lang="fr")
    assert f'href="/t/{MERGED_A}?lang=fr"' in lot_fr
    assert "Ce lot a été formé à partir de 2 étiquettes" in text_of(lot_fr)
    assert "Authentique — consommée chez" in verdict_of(lot_fr) and "22,400\u00a0kg" in verdict_of(lot_fr)


def test_names_are_escaped(world) -> None:
    document = page(world, FLAGGED)
    escaped = "Bukavu &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Sons"
    assert html.unescape(escaped) == TRADER_NAME
    assert escaped in document  # in the verdict, the timeline and the check-it-yourself section
    assert document.count(escaped) >= 4
    assert "<script" not in document.lower()
    assert TRADER_NAME in text_of(document)  # what a person reads is the name as registered
    assert "<script" not in page(world, FLAGGED, headers=FR).lower()


def _operator_label(world, tag: str) -> str:
    origin = world.ledger.identity().origin
    return sign_label(world.root.private_key, world.root.kid, origin, tag)


def test_signed_label_valid_and_forged(world) -> None:
    valid = page(world, IN_CUSTODY, s=_operator_label(world, IN_CUSTODY))
    box = re.search(r'<section class="box (\w+)" id="label">(.*?)</section>', valid, re.S)
    assert box and box.group(1) == "ok"
    assert text_of(box.group(2)).startswith("✓ Label signature valid")
    assert valid.index('id="label"') < valid.index('id="verdict"')  # shown first, prominently

    # a real operator label of another tag, copied onto this one
    copied = page(world, IN_CUSTODY, s=_operator_label(world, VOIDED))
    # a label signed by a key that is not the operator's (a trader's)
    trader = world.orgs["evil-trader"].keys
    foreign = sign_label(trader.private_key, trader.kid, world.ledger.identity().origin, IN_CUSTODY)
    for forged in (copied, page(world, IN_CUSTODY, s=foreign), page(world, IN_CUSTODY, s="garbage"),
                   page(world, IN_CUSTODY, s="")):
        box = re.search(r'<section class="box (\w+)" id="label">(.*?)</section>', forged, re.S)
        assert box and box.group(1) == "bad"
        assert text_of(box.group(2)).startswith("✕ Label signature INVALID — possible counterfeit label")
        assert verdict_of(forged).startswith("ok: ✓ Authentic")  # the tag itself is still what the log says
    fr = page(world, IN_CUSTODY, headers=FR, s=foreign)
    assert "Signature de l'étiquette QR INVALIDE — étiquette peut-être contrefaite" in text_of(fr)
    # a fabricated tag number with a label: 404, and the label is flagged too
    unknown = page(world, UNKNOWN, status=404, s=_operator_label(world, IN_CUSTODY))
    assert "Label signature INVALID" in text_of(unknown) and "UNKNOWN TAG" in text_of(unknown)
    # the language switch keeps the label
    assert "s=" in re.search(r'<header>.*?href="([^"]+)"', valid).group(1)


def test_never_a_server_error(world, monkeypatch) -> None:
    for path in (f"/t/{IN_CUSTODY}?as_of=-1", f"/t/{IN_CUSTODY}?as_of=1e3", f"/t/{IN_CUSTODY}?lang=%00",
                 f"/t/{IN_CUSTODY}?s={'A' * 5000}", f"/t/{IN_CUSTODY}?s=%FF%FE", "/t/%FF%FE",
                 "/t/" + "A" * 5000, f"/t/{IN_CUSTODY}?as_of=%EF%BC%91", "/t/..%2F..%2Fetc%2Fpasswd"):
        response = world.http.get(path, headers={"accept-language": "fr;q=abc, ;;, en;q=2"})
        assert response.status_code in (200, 400, 404), (path, response.status_code)
        assert response.headers["content-type"] == "text/html; charset=utf-8", path

    # the store does not answer: a page that says so (503), not a stack trace
    from eventsourcing.persistence import OperationalError

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(world.ledger, "tag", down)
    response = world.http.get(f"/t/{IN_CUSTODY}", headers=FR)
    assert response.status_code == 503 and response.headers["cache-control"] == "no-store"
    assert "Momentanément indisponible" in response.text


def test_flagged_tag_lists_reasons_and_evidence(world) -> None:
    """A backdated key revocation (page_world): the flag, its reasons and its evidence are on the page."""
    entries, deadline = world.entries(), time.monotonic() + 10
    document = world.http.get(f"/v1/tags/{FLAGGED}").json()
    while (document.get("flags_position") or 0) < entries and time.monotonic() < deadline:
        time.sleep(0.05)
        document = world.http.get(f"/v1/tags/{FLAGGED}").json()
    assert document["verdict"]["code"] == "flagged"
    [flag] = document["flags"]
    assert flag["code"] == "custody.revoked_key"
    page_html = page(world, FLAGGED)
    assert verdict_of(page_html).startswith("warn: ! FLAGGED — check before accepting 1 warning below. Custody "
                                            f"status: in the custody of {TRADER_NAME}")
    flags = re.search(r'<section id="flags">(.*?)</section>', page_html, re.S).group(1)
    assert '<div class="box warn flag" data-code="custody.revoked_key">' in flags
    assert "Custody passed through an organisation whose key was revoked" in text_of(flags)
    for evidence in flag["evidence"]:
        assert f"log entry #{evidence['seq']}" in text_of(flags)
        assert evidence["hash"][:16] in flags
    assert f"revoked with effect from " in text_of(flags)  # the revocation's evidence, said by the catalogue
    # the reason, in words, with the organisation's name and a readable date (not its id and a raw timestamp)
    reason = text_of(re.search(r'<p class="head">[^<]*</p>\s*<p class="small">(.*?)</p>', flags, re.S).group(1))
    assert reason.startswith(f"Entry #") and f"by {TRADER_NAME}, dated " in reason, reason
    assert "was later revoked with effect from" in reason and " UTC" in reason
    french_html = page(world, FLAGGED, headers=FR)
    french = text_of(french_html)
    assert "SIGNALÉE — à vérifier avant d'accepter 1 alerte ci-dessous." in french
    french_flags = text_of(re.search(r'<section id="flags">(.*?)</section>', french_html, re.S).group(1))
    assert "La chaîne de possession passe par une organisation dont la clé a été révoquée" in french_flags
    assert "a été signée avec la clé" in french_flags and "révoquée par la suite avec effet au" in french_flags
    assert TRADER_NAME in french_flags and " UTC" in french_flags
    # no English sentence of the ledger, no organisation id, no raw timestamp left on the French page
    assert flag["summary"] not in french_flags
    for evidence in flag["evidence"]:
        assert evidence["note"] not in french_flags
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", french_flags), french_flags
    assert "revoked" not in french_flags and "signed with" not in french_flags



# ------------------------------------------------------------------------------------------------
# Risk at the origin sites (protocol 16.6): page_world's build_risk_story
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def risk_world(live_ledger):
    build_page_world(live_ledger)
    build_risk_story(live_ledger)
    return live_ledger


def risk_section(document: str) -> str:
    match = re.search(r'<section id="risk">(.*?)</section>', document, re.S)
    assert match, "no risk section"
    return match.group(1)


def site_blocks(section: str) -> dict[str, str]:
    """Each origin site's block, by the site name shown."""
    blocks = re.findall(r'<div class="site">\s*<h3>(.*?)</h3>(.*?)(?=<div class="site">|\Z)', section, re.S)
    return {html.unescape(name): body for name, body in blocks}


def incident_box(section: str, incident: str) -> tuple[str, str]:
    """(tone, visible text) of one incident's box."""
    match = re.search(rf'<div class="box (\w+) inc" data-incident="{incident}"[^>]*>(.*?)</div>', section, re.S)
    assert match, f"{incident} is not listed"
    return match.group(1), text_of(match.group(2))


def test_risk_of_the_origin_site_with_its_red_flags_and_actions(risk_world) -> None:
    document = page(risk_world, IN_CUSTODY)
    json_risk = risk_world.http.get(f"/v1/tags/{IN_CUSTODY}").json()["risk"]
    assert [i["id"] for i in json_risk["sites"][0]["incidents"]] == [DISMISSED, RED_REMEDIATED, RED_OPEN]
    assert (json_risk["open_red_flags_in_window"], json_risk["remediated"], json_risk["unremediated"]) == (2, 1, 1)
    # after the origin, before the custody timeline
    assert document.index('<section id="origin">') < document.index('<section id="risk">') < \
        document.index('<section id="timeline">')
    section = risk_section(document)
    summary = re.search(r'<div class="box (\w+)" id="risk-summary">(.*?)</div>', section, re.S)
    assert summary.group(1) == "bad"
    assert text_of(summary.group(2)) == ("✕ 1 red flag of the window is still open, not remediated "
                                         "Red flags open during the window: 2 Remediated since: 1 "
                                         "Still open, not remediated: 1")
    [(name, block)] = site_blocks(section).items()
    assert name == SITE_NAME
    window = json_risk["sites"][0]["window"]
    assert f"Window: from {window['from'][:10]} (tagged there) until now" in text_of(block)
    assert "Site status now: red — a red flag is open" in text_of(block)
    # the open red flag: category in words, severity, status, summary (escaped), and each action's outcome
    incident = next(i for i in json_risk["sites"][0]["incidents"] if i["id"] == RED_OPEN)
    tone, shown = incident_box(section, RED_OPEN)
    assert tone == "bad"
    assert shown.startswith("! Armed groups Red flag · Severity: high · confirmed, open")
    assert f"Occurred on {incident['occurred_at'][:10]}, reported on {incident['reported_at'][:10]}" in shown
    assert f"Incident {RED_OPEN}" in shown and "12 people affected" in shown
    assert "OECD Annex II: support to non-state armed groups (paragraphs 3-4)" in shown
    assert f"Public summary: {INCIDENT_SUMMARY}" in shown
    assert html.escape(INCIDENT_SUMMARY, quote=False) in section and "<b>taxing</b>" not in section
    due = incident["actions"][0]["due"][:10]
    implemented = incident["actions"][0]["implemented_at"][:10]
    assert f"{ACTION_DONE} — {SITE_NAME}, due {due}: implemented on {implemented}" in shown
    assert f"{ACTION_FAILED} — {COOP_NAME}, due {due}: verified not implemented · 40% done by the owner's last " \
           "report" in shown
    assert html.escape(ACTION_FAILED, quote=False) in section
    assert f'<a href="/v1/incidents/{RED_OPEN}">{RED_OPEN}</a>' in section
    assert risk_world.http.get(f"/v1/incidents/{RED_OPEN}").status_code == 200
    # remediated red flag, and a dismissed incident (not a red flag) whose action was cancelled
    tone, shown = incident_box(section, RED_REMEDIATED)
    assert tone == "ok"
    assert shown.startswith("✓ Worst forms of child labour Red flag · Severity: medium · closed on ")
    assert "Remediated: closed, every corrective action verified implemented" in shown
    assert "OECD Annex II: serious human rights abuses (paragraphs 1-2)" in shown
    tone, shown = incident_box(section, DISMISSED)
    assert tone == "info" and "Red flag" not in shown
    assert shown.startswith("– Environment Severity: low · dismissed on ")
    assert "Test the river water" in shown and "cancelled (the incident was dismissed)" in shown
    # public summary only: the sealed details never reach the page
    assert "sealed: names of the people involved" not in document
    assert "<script" not in document.lower()


def test_risk_section_in_french(risk_world) -> None:
    section = text_of(risk_section(page(risk_world, IN_CUSTODY, headers=FR)))
    for words in ("Risques sur les sites d'origine",
                  "1 signal d'alerte rouge de la période est toujours ouvert, sans remédiation",
                  "Signaux d'alerte rouges ouverts pendant la période\u00a0: 2", "Remédiés depuis\u00a0: 1",
                  "Toujours ouverts, sans remédiation\u00a0: 1", "(étiquetage sur le site) à aujourd'hui",
                  "État actuel du site\u00a0: rouge — un signal d'alerte rouge est ouvert",
                  "Groupes armés Signal d'alerte rouge · Gravité\u00a0: élevée · confirmé, ouvert",
                  "Annexe II de l'OCDE\u00a0: soutien à des groupes armés non étatiques (paragraphes 3-4)",
                  "12 personnes touchées", f"Résumé public\u00a0: {INCIDENT_SUMMARY}",
                  f"{ACTION_DONE} — {SITE_NAME}, échéance", "mise en œuvre le",
                  "vérifiée comme non mise en œuvre · 40\u00a0% réalisés selon le dernier rapport du responsable",
                  "Pires formes de travail des enfants", "Remédié\u00a0: clos, chaque action corrective vérifiée",
                  "Environnement", "classé sans suite le", "annulée (l'incident a été classé sans suite)"):
        assert words in section, words
    for english in ("Red flag", "Severity", "Window", "implemented on", "Armed groups"):
        assert english not in section, english


def test_risk_empty_state_at_a_site_without_incidents(risk_world) -> None:
    for headers, empty, none in (
            (EN, "No incident recorded at this site during the window.",
             "✓ No red flag open at the origin sites during the window"),
            (FR, "Aucun incident enregistré sur ce site pendant la période.",
             "✓ Aucun signal d'alerte rouge ouvert sur les sites d'origine pendant la période")):
        section = risk_section(page(risk_world, QUIET, headers=headers))
        summary = re.search(r'<div class="box (\w+)" id="risk-summary">(.*?)</div>', section, re.S)
        assert summary.group(1) == "ok" and text_of(summary.group(2)).startswith(none)
        blocks = site_blocks(section)
        assert list(blocks) == [OTHER_SITE_NAME]  # escaped in the page, shown as registered
        assert empty in text_of(blocks[OTHER_SITE_NAME]) and 'class="box' not in blocks[OTHER_SITE_NAME]
    assert html.escape(OTHER_SITE_NAME, quote=False) in section
    assert "green — no open incident, no overdue action" in text_of(risk_section(page(risk_world, QUIET)))


def test_a_lot_shows_the_risk_of_the_sites_of_its_inputs(risk_world) -> None:
    blocks = site_blocks(risk_section(page(risk_world, MIXED_LOT)))
    assert set(blocks) == {SITE_NAME, OTHER_SITE_NAME}
    assert {RED_OPEN, RED_REMEDIATED, DISMISSED} == set(re.findall(r'data-incident="([^"]+)"', blocks[SITE_NAME]))
    assert "No incident recorded at this site during the window." in text_of(blocks[OTHER_SITE_NAME])
    assert "data-incident" not in blocks[OTHER_SITE_NAME]
    # a finished lot: its window ends with the consumption, and the incidents were open during it
    section = risk_section(page(risk_world, LOT))
    json_risk = risk_world.http.get(f"/v1/tags/{LOT}").json()["risk"]
    [window] = [s["window"] for s in json_risk["sites"]]
    assert f"Window: from {window['from'][:10]} (tagged there) to {window['to'][:10]}" in text_of(section)
    assert set(re.findall(r'data-incident="([^"]+)"', section)) == {RED_OPEN, RED_REMEDIATED, DISMISSED}
    assert list(site_blocks(section)) == [SITE_NAME]


def test_pages_without_incidents_say_so(world) -> None:
    """page_world alone has no incident: every tag's page says so, per origin site."""
    section = text_of(risk_section(page(world, LOT)))
    assert section.startswith("Risk at the origin sites")
    assert f"{SITE_NAME} Window: from" in section
    assert "No incident recorded at this site during the window." in section


@pytest.mark.parametrize("lang, authenticity, risk", [
    ("en", "Authenticity: is the tag genuine", "Risk: were red flags open"),
    ("fr", "Authenticité\u00a0: l'étiquette est-elle vraie", "Risque\u00a0: des signaux d'alerte"),
])
def test_authenticity_and_risk_are_two_labelled_verdicts(risk_world, lang: str, authenticity: str, risk: str) -> None:
    """An authentic tag whose origin site has an open, unremediated red flag: the check mark of authenticity is
    labelled as such, and the risk verdict (with what OECD Step 3 asks of a buyer) follows it at once."""
    document = page(risk_world, IN_CUSTODY, lang=lang)
    label = document.index('id="authenticity-label"')
    verdict = document.index('id="verdict"')
    risk_label = document.index('id="risk-label"')
    risk_box = re.search(r'<section class="box (\w+)" id="risk-verdict" data-recommendation="(\w+)">(.*?)</section>',
                         document, re.S)
    assert label < verdict < risk_label < risk_box.start() < document.index('<section id="flags">'
                                                                           if 'id="flags"' in document
                                                                           else '<section id="origin">')
    assert authenticity in text_of(document[label:verdict]) and risk in text_of(document[risk_label:risk_box.start()])
    # nothing but the label lies between the verdict box and the risk verdict
    between = document[document.index("</section>", verdict) + len("</section>"):document.rindex("<p", 0, risk_label)]
    assert text_of(between) == ""
    assert risk_box.group(1) == "bad"
    expected = risk_world.http.get(f"/v1/reports/due-diligence/{IN_CUSTODY}").json()["decision"]["risk"]["step3"]
    assert risk_box.group(2) == expected["recommendation"] and expected["recommendation"] in ("suspend", "disengage")
    assert ("OECD Step 3" if lang == "en" else "Étape 3 de l'OCDE") in text_of(risk_box.group(3))


FRENCH_LEFTOVERS = ("the", "and", "of", "with", "due", "mass", "bag", "while", "none", "holder", "risk", "red flag",
                    "window", "custody", "authentic", "remediated", "open", "received", "dispatched", "suspend")


def test_the_french_page_reads_as_french(risk_world) -> None:
    """No English word of the page's own (what the ledger's users wrote is quoted as it is, marked lang="en" or in
    <q>, <code>, <pre>), and French typography: a space before : ; ! ?"""
    document = page(risk_world, IN_CUSTODY, lang="fr")
    document = re.sub(r'<([a-z]+)[^>]* lang="en"[^>]*>.*?</\1>', " ", document, flags=re.S)
    document = re.sub(r"<(code|pre|q|style|title)[^>]*>.*?</\1>", " ", document, flags=re.S)
    document = re.sub(r'href="[^"]*"', "", document)
    text = text_of(document)
    data = risk_world.http.get(f"/v1/tags/{IN_CUSTODY}").json()
    names = {e.get("actor_name") for e in data["events"]} | {o.get("site_name") for o in data["origins"]}
    for site in data["risk"]["sites"]:  # what the monitor and the operator wrote, quoted as written
        for incident in site["incidents"]:
            names |= {incident.get("summary")} | {a.get("description") for a in incident["actions"]}
    for name in sorted(filter(None, names), key=len, reverse=True):
        text = text.replace(name, " ")
    words = set(re.findall(r"[a-zà-ÿ]+(?: flag)?", text.lower()))
    leftovers = sorted(w for w in FRENCH_LEFTOVERS if w in words)
    assert not leftovers, [text[max(0, m.start() - 60):m.end() + 20] for w in leftovers
                           for m in re.finditer(rf"\b{w}\b", text, re.I)][:6]
    assert not re.findall(r"[^\s\u00a0\u202f\d][:;!?](?=\s|$)", text), text
