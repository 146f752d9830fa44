"""The verification page without a server: the message catalogue, language negotiation, number formats, and the
rendering of documents the live tests cannot easily produce (flags, a failed integrity check, a verdict code
this page does not know)."""

from __future__ import annotations

import copy
import re

import pytest
from markupsafe import Markup

from api.i18n import CATALOGUE, LANGUAGES, META, Messages, format_mass, negotiate
from api.page import maybe_gzip, render, tag_page_model


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"{(\w+)}", text))


def test_every_language_says_the_same_things() -> None:
    assert LANGUAGES[0] == "en" and {"fr", "sw"} <= set(LANGUAGES) == set(CATALOGUE) == set(META)
    english = CATALOGUE["en"]
    for lang in LANGUAGES:
        assert set(CATALOGUE[lang]) == set(english), (lang, set(CATALOGUE[lang]) ^ set(english))
        assert META[lang]["name"] and all(isinstance(n, int) for n in META[lang]["plural_one"])
        assert META[lang]["decimal"] != META[lang]["group"]
        for key, text in CATALOGUE[lang].items():
            assert _placeholders(english[key]) == _placeholders(text), (lang, key)
            assert text.strip(), (lang, key)
            assert "<" not in text, f"{lang} {key}: catalogue strings are text, not HTML"
    for key in english:  # plural pairs are complete
        if key.endswith("_one"):
            assert key[:-4] + "_other" in english, key


def test_a_language_is_one_catalogue_file(tmp_path, monkeypatch) -> None:
    """Adding Lingala is adding `ln.json`: negotiation, plurals and number formats follow from it."""
    import json

    from api import i18n

    for path in i18n.CATALOGUE_DIR.glob("*.json"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    lingala = dict(CATALOGUE["fr"], rel_inputs_one="Lot oyo esalemaki na etiketi {n}:",
                   rel_inputs_other="Lot oyo esalemaki na ba-etiketi {n}:")
    (tmp_path / "ln.json").write_text(json.dumps({"@meta": {"name": "Lingála", "plural_one": [0, 1], "decimal": ",",
                                                            "group": "."}, **lingala}), encoding="utf-8")
    monkeypatch.setattr(i18n, "CATALOGUE_DIR", tmp_path)
    catalogue, meta = i18n._load()
    monkeypatch.setattr(i18n, "CATALOGUE", catalogue)
    monkeypatch.setattr(i18n, "META", meta)
    monkeypatch.setattr(i18n, "LANGUAGES", ("en", *sorted(c for c in catalogue if c != "en")))
    assert i18n.negotiate("ln-CD, fr;q=0.5") == "ln"
    assert i18n.Messages("ln")("rel_inputs", n=0) == "Lot oyo esalemaki na etiketi 0:"
    assert i18n.format_mass(1_234_567, "ln") == "1.234,567\u00a0kg"
    assert {"code": "ln", "name": "Lingála"} in i18n.language_names()


@pytest.mark.parametrize("header, override, expected", [
    (None, None, "en"),
    ("", None, "en"),
    ("fr", None, "fr"),
    ("FR-cd", None, "fr"),
    ("fr-CD,fr;q=0.9,en;q=0.8", None, "fr"),
    ("en-US,en;q=0.9,fr;q=0.8", None, "en"),
    ("en;q=0.5, fr;q=0.8", None, "fr"),
    ("en;q=0.8, fr;q=0.8", None, "en"),  # a tie keeps the header's order
    ("fr;q=0.8, en;q=0.8", None, "fr"),
    ("de-DE, ln;q=0.9, fr;q=0.3", None, "fr"),  # Lingala first, then French
    ("sw, de", None, "sw"),
    ("sw-TZ;q=0.4, fr;q=0.5", None, "fr"),
    ("en", "sw", "sw"),
    ("de, rw", None, "en"),  # Kinyarwanda has no catalogue file (yet)
    ("fr;q=0, en", None, "en"),
    ("fr;q=0, *", None, "en"),
    ("en;q=0, *", None, "fr"),
    ("*", None, "en"),
    ("*;q=0.5, fr;q=0.6", None, "fr"),
    ("fr;q=1.5, en", None, "en"),  # an out-of-range q is ignored
    ("fr;q=abc, en;q=0.1", None, "en"),
    ("garbage;;, fr", None, "fr"),
    ("fr", "en", "en"),
    ("en", "fr", "fr"),
    ("en", "fr-CD", "fr"),
    ("fr", "de", "fr"),  # an override we do not have falls back to the header
    ("fr", "", "fr"),
    ("," * 10_000 + "fr", None, "en"),  # long headers are cut, not parsed forever
])
def test_negotiate(header, override, expected) -> None:
    assert negotiate(header, override) == expected


def test_masses() -> None:
    assert format_mass(49_800, "en") == "49.800\u00a0kg"
    assert format_mass(49_800, "fr") == "49,800\u00a0kg"
    assert format_mass(5, "en") == "0.005\u00a0kg"
    assert format_mass(1_234_567, "en") == "1,234.567\u00a0kg"
    assert format_mass(1_234_567, "fr") == "1\u202f234,567\u00a0kg"
    assert format_mass(None, "en") == ""


def test_messages_escape_values_and_choose_plurals() -> None:
    t = Messages("en")
    out = t("ev_custody_received", actor="<b>x</b>")
    assert isinstance(out, Markup) and out == "Received by &lt;b&gt;x&lt;/b&gt;"
    assert t("ev_custody_received", actor=Markup("<strong>x</strong>")) == "Received by <strong>x</strong>"
    assert t("rel_inputs", n=1) == "This lot was formed from 1 tag:"
    assert t("rel_inputs", n=3) == "This lot was formed from 3 tags:"
    fr = Messages("fr")
    assert fr("rel_inputs", n=1) == "Ce lot a été formé à partir d&#39;une étiquette\u00a0:"
    assert fr("rel_inputs", n=2) == "Ce lot a été formé à partir de 2 étiquettes\u00a0:"
    assert Messages("xx").lang == "en"
    sw = Messages("sw")
    assert sw("rel_inputs", n=1) == "Shehena hii iliundwa kutoka lebo 1:"
    assert sw("rel_inputs", n=0) == "Shehena hii iliundwa kutoka lebo 0:"
    assert format_mass(1_234_567, "sw") == "1,234.567\u00a0kg"


def test_gzip_negotiation() -> None:
    body = b"x" * 5000
    assert maybe_gzip(body, "gzip, deflate, br")[1] is True
    assert maybe_gzip(body, "br;q=1, gzip;q=0")[1] is False
    assert maybe_gzip(body, "identity")[1] is False
    assert maybe_gzip(body, None)[1] is False
    assert maybe_gzip(b"small", "gzip")[1] is False


# ------------------------------------------------------------------------------------------------
# Rendering documents with flags, failures and unknown codes
# ------------------------------------------------------------------------------------------------

DOCUMENT = {
    "format": "tagledger/tag-view/v1",
    "tag": "KAL-000009",
    "verdict": {"code": "in_custody", "authentic": True, "summary": "Authentic. In the custody of Trader."},
    "state": {"status": "in_custody", "holder": "trader", "issued_to": "site", "mass_g": 8000, "lot": None,
              "inputs": [], "parent": None, "outputs": [], "void_reason": None, "pending_recipient": None},
    "origins": [{"tag": "KAL-000009", "site": "site", "site_name": "Site", "mineral": "cobalt", "ore": None,
                 "pit": "P1", "attached_at": "2026-01-02T03:04:05.000000Z", "gps": None, "price_paid": None}],
    "events": [
        {"seq": 3, "received": "2026-01-01T00:00:00.000000Z", "hash": "a" * 64, "type": "tags_issued",
         "actor": "op", "actor_name": "Operator", "time": "2026-01-01T00:00:00.000000Z", "log_index": 3,
         "inclusion_proof": None,
         "envelope": {"sig": "SIG1", "body": {"type": "tags_issued", "stream": "org:site", "actor": "op",
                                              "key": "k1", "time": "2026-01-01T00:00:00.000000Z",
                                              "data": {"tags": ["KAL-000009"]}}}},
        {"seq": 7, "received": "2026-01-02T03:04:05.000000Z", "hash": "b" * 64, "type": "some_future_event",
         "actor": "trader", "actor_name": "Trader <i>", "time": "2026-01-02T03:04:05.000000Z", "log_index": 7,
         "inclusion_proof": {"size": 9, "hashes": ["c" * 64]},
         "envelope": {"sig": "SIG2", "body": {"type": "some_future_event", "stream": "tag:KAL-000009",
                                              "actor": "trader", "key": "k2", "time": "2026-01-02T03:04:05Z",
                                              "data": {}}}},
    ],
    "keys": {"k1": {"org": "op", "public_key": "PK1", "valid_from": "2026-01-01T00:00:00Z", "revoked_from": None},
             "k2": {"org": "trader", "public_key": "PK2", "valid_from": "2026-01-01T00:00:00Z",
                    "revoked_from": "2026-01-01T12:00:00Z"}},
    "problems": [],
    "as_of": None,
    "log": {"checkpoint": "tagledger.test/log\n9\nroot\n\n— sig\n", "size": 9, "root": "d" * 64},
}


def _render(document: dict, lang: str = "en") -> str:
    t = Messages(lang)
    model = tag_page_model(document, registry=None, t=t, lang_param=None, label=None, as_of=None,
                           base_url="https://ledger.example")
    return render("tag.html", t=t, languages=[], page=model, tag=document["tag"], label=None)


def test_flags_are_listed_with_their_evidence() -> None:
    document = copy.deepcopy(DOCUMENT)
    document["verdict"] = {"code": "flagged", "authentic": True, "summary": "Flagged.", "custody_status": "in_custody"}
    document["flags"] = [
        {"code": "custody.revoked_key", "summary": "Custody passed through trader, whose key k2 was revoked "
                                                   "effective 2026-01-01T12:00:00Z",
         "evidence": [{"seq": 7, "hash": "b" * 64, "note": "signed with k2 <after> revocation"},
                      {"seq": 99, "hash": "e" * 64, "note": "key_revoked"}]},
        {"code": "some.new_flag", "summary": "A flag this page has no title for", "evidence": []},
    ]
    page = _render(document)
    assert 'data-verdict="flagged"' in page and "FLAGGED — check before accepting" in page
    assert "2 warnings below. Custody status: in the custody of <strong>Trader &lt;i&gt;</strong>" in page
    assert "Custody passed through an organisation whose key was revoked" in page
    # wording api/flag_reasons.py does not know: the server's own words, marked as English, never dropped
    assert '<span lang="en">Custody passed through trader, whose key k2 was revoked effective' in page
    # an evidence item that is an event of this tag is said by its timeline row (in the reader's language)
    assert '<a href="#e7">log entry #7</a> <code>bbbbbbbbbbbbbbbb…</code><br>some_future_event by' in page
    assert "signed with k2" not in page
    assert 'id="e7"' in page
    # an entry that is not an event of this tag (a key revocation) links to the raw log entry
    assert '<a href="/v1/log/entries?start=99&amp;end=100">log entry #99</a> — <span lang="en">key_revoked</span>' \
        in page
    assert '<li data-seq="7" class="f">' in page and '<li data-seq="3">' in page  # the evidence row stands out
    assert "A flag this page has no title for" in page
    fr = _render(document, "fr")
    assert "SIGNALÉE — à vérifier avant d&#39;accepter" in fr
    assert "La chaîne de possession passe par une organisation dont la clé a été révoquée" in fr
    assert "entrée du journal n° 7" in fr


def test_integrity_failure_and_unknown_codes_are_shown_not_crashed_on() -> None:
    document = copy.deepcopy(DOCUMENT)
    document["verdict"] = {"code": "integrity_failed", "authentic": False, "summary": "..."}
    document["problems"] = ["entry #7: signature does not verify"]
    page = _render(document)
    assert 'class="box bad" id="verdict"' in page
    assert "INTEGRITY CHECK FAILED" in page and "entry #7: signature does not verify" in page

    document["verdict"] = {"code": "quarantined", "authentic": False, "summary": "Held by customs <now>."}
    page = _render(document)
    assert 'class="box warn" id="verdict"' in page and "Held by customs &lt;now&gt;." in page
    assert "some_future_event by <strong>Trader &lt;i&gt;</strong>" in page
    assert "c" * 64 in page and "Inclusion proof (tree size 9)" in page
    assert "Not yet covered by the checkpoint" in page  # event #3 has no proof
    assert "tagledger audit https://ledger.example --tag KAL-000009" in page


# ------------------------------------------------------------------------------------------------
# Risk at the origin sites (protocol 16.6)
# ------------------------------------------------------------------------------------------------


def _incident(**overrides) -> dict:
    incident = {
        "id": "INC-9", "site": "site", "reporter": "monitor", "category": "governance", "worst_forms": None,
        "annex_ii": [{"risk": "money_laundering", "paragraphs": "9-10"}], "severity": "medium", "red_flag": False,
        "status": "confirmed", "remediated": False, "occurred_at": "2026-01-05T00:00:00Z",
        "reported_at": "2026-01-06T08:00:00.000000Z", "resolved_at": None, "summary": "Levy <b>taken</b>",
        "people_affected": None, "referred_to": "helpers", "evidence": [], "details_sha256": "f" * 64,
        "actions": [{"action": "A1", "owner": "coop", "description": "Stop the levy & <refund>", "cycle": "2026-01",
                     "due": "2026-02-01T00:00:00Z", "status": "open", "overdue": True, "progress": None,
                     "reports": 0, "last_verification": None, "implemented_at": None}],
        "events": [],
    }
    return {**incident, **overrides}


def _with_risk(**site_overrides) -> dict:
    document = copy.deepcopy(DOCUMENT)
    site = {"site": "site", "site_name": "Site", "status_now": "amber",
            "window": {"from": "2026-01-02T03:04:05.000000Z", "to": "2026-03-01T00:00:00.000000Z"},
            "incidents": [_incident()], **site_overrides}
    document["risk"] = {"at": "2026-03-01T00:00:00.000000Z", "sites": [site], "open_red_flags_in_window": 0,
                        "remediated": 0, "unremediated": 0}
    return document


def test_risk_section_overdue_action_and_escaping() -> None:
    page = _render(_with_risk())
    section = re.search(r'<section id="risk">(.*?)</section>', page, re.S).group(1)
    assert '<div class="box ok" id="risk-summary">' in section
    assert "No red flag open at the origin sites during the window" in section
    assert "Window: from 2026-01-02 (tagged there) until now" in section  # custody still going at T
    assert 'Site status now: <strong class="st warn">amber — an open incident or an overdue corrective action' \
           in section
    assert '<div class="box warn inc" data-incident="INC-9">' in section  # open, not a red flag
    assert "Governance (bribery, illegal taxes, unpaid royalties)" in section
    assert "<strong>Red flag</strong>" not in section and "data-red-flag" not in section
    assert "OECD Annex II: money laundering (paragraphs 9-10)" in section
    assert "Occurred on 2026-01-05, reported on 2026-01-06" in section and "confirmed, open" in section
    assert "referred to <strong>helpers</strong>" in section
    assert "<q>Levy &lt;b&gt;taken&lt;/b&gt;</q>" in section
    assert ("Stop the levy &amp; &lt;refund&gt; — <strong>coop</strong>, due 2026-02-01: "
            '<strong class="st bad">OVERDUE</strong>') in section
    assert '<a href="/v1/incidents/INC-9">INC-9</a>' in section
    assert "f" * 64 not in page  # the details commitment is for machines; the details never come here
    fr = _render(_with_risk(), "fr")
    assert "Gouvernance (corruption, taxes illégales, redevances impayées)" in fr and "EN RETARD" in fr
    assert "échéance 2026-02-01" in fr and "Annexe II de l&#39;OCDE\u00a0: blanchiment d&#39;argent" in fr


def test_risk_section_as_of_unknown_values_and_absence() -> None:
    document = _with_risk(status_now="purple", incidents=[_incident(
        category="space_weather", severity="extreme", status="archived", red_flag=True, annex_ii=[],
        actions=[{"action": "A1", "owner": "coop", "description": "x", "due": "2026-02-01T00:00:00Z",
                  "status": "paused", "overdue": False}])])
    document["risk"]["open_red_flags_in_window"] = 1
    t = Messages("en")
    model = tag_page_model(document, registry=None, t=t, lang_param=None, label=None, as_of=12,
                           base_url="https://ledger.example")
    page = render("tag.html", t=t, languages=[], page=model, tag=document["tag"], label=None)
    section = re.search(r'<section id="risk">(.*?)</section>', page, re.S).group(1)
    # a historical view: the window's end is the view's time, not "now"
    assert "Window: from 2026-01-02 (tagged there) to 2026-03-01" in section
    assert '<a href="/v1/incidents/INC-9?as_of=12">' in section
    assert '<div class="box warn" id="risk-summary">' in section
    assert "1 red flag open during the window, none still open" in section
    # values this page has no words for are shown as the server gives them, never dropped
    for raw in ("purple", "space_weather", "extreme", "archived", "paused"):
        assert raw in section, raw
    # a document without `risk` (or no origin site yet): no section
    assert 'id="risk"' not in _render(DOCUMENT)
    empty = copy.deepcopy(DOCUMENT)
    empty["risk"] = {"at": "2026-03-01T00:00:00Z", "sites": [], "open_red_flags_in_window": 0, "remediated": 0,
                     "unremediated": 0}
    assert 'id="risk"' not in _render(empty)
