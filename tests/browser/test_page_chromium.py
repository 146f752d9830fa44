"""The verification page in a real headless Chromium, on a 360 px wide phone screen: what a person sees.

An authentic tag (English and French), an unknown tag (404), a flagged tag (a backdated key revocation:
`custody.revoked_key`), the risk at the origin sites (incidents and corrective actions), and the page as
`chromium --dump-dom` and `--screenshot` render it.
"""

from __future__ import annotations

import json
import re
import struct
import time

import pytest

from tests.integration.page_world import (
    COOP_NAME,
    FLAGGED,
    IN_CUSTODY,
    INCIDENT_SUMMARY,
    MIXED_LOT,
    OTHER_SITE_NAME,
    SITE_NAME,
    TRADER_NAME,
    UNKNOWN,
    build_risk_story,
)

FR = "fr-CD,fr;q=0.9,en;q=0.5"
# No horizontal scrolling on a 360 px screen; the verdict box's colours as rendered.
LAYOUT = """JSON.stringify({
  overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  verdictBackground: getComputedStyle(document.getElementById('verdict')).backgroundColor,
  verdictTop: document.getElementById('verdict').getBoundingClientRect().top,
  viewportHeight: innerHeight,
  scripts: document.scripts.length,
  fontPx: parseFloat(getComputedStyle(document.body).fontSize),
  timeline: [...document.querySelectorAll('#timeline li')].map(li => li.innerText),
  rows: [...document.querySelectorAll('#timeline li')].map(li => ({seq: li.dataset.seq, text: li.innerText})),
})"""


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_authentic_tag_as_a_person_sees_it(browser, page_world, tmp_path) -> None:
    seen, layout = browser.open(f"{page_world.url}/t/{IN_CUSTODY}", evaluate=LAYOUT,
                                screenshot=tmp_path / "authentic.png")
    layout = json.loads(layout)
    assert seen.status == 200 and seen.lang == "en"
    assert seen.title == f"Tag {IN_CUSTODY} — tagledger verification"
    shown = lines(seen.text)
    # the verdict comes first, in words (and in green)
    verdict_at = shown.index(f"✓ Authentic — in the custody of {COOP_NAME}")
    assert shown[:verdict_at] == ["tagledger · custody verification", "Français · Kiswahili", "Security tag",
                                  IN_CUSTODY, "Authenticity: is the tag genuine, its signed history intact?"]
    assert shown[verdict_at + 1] == "Last recorded mass: 49.750\u00a0kg"
    # the second verdict, risk, right below the first: labelled, with what OECD Step 3 asks of a buyer
    assert shown[verdict_at + 2:verdict_at + 5] == [
        "Risk: were red flags open at the origin sites while the ore was there?",
        "✓ No red flag open at the origin sites during the window",
        "OECD Step 3 for a buyer: Continue: no unresolved risk while the ore was at its sites. Details below."]
    assert layout["verdictBackground"] == "rgb(231, 245, 234)"
    assert layout["verdictTop"] < layout["viewportHeight"] / 2  # above the fold on a phone
    assert layout["overflow"] == 0, "the page scrolls sideways at 360 px"
    assert layout["scripts"] == 0 and layout["fontPx"] >= 16
    # the origin
    origin = shown[shown.index("Origin"):shown.index("Risk at the origin sites")]
    assert origin[1:] == ["Mine site", SITE_NAME, "Mineral", "tin (cassiterite)", "Pit", "Pit 7", "Tagged on",
                          origin[8], "GPS", "-2.1234567, 28.7654321"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", origin[8])
    # the risk at the origin site: no incident was recorded there
    risk = shown[shown.index("Risk at the origin sites"):shown.index("Custody, as it happened")]
    assert risk[2:5] == ["✓ No red flag open at the origin sites during the window",
                         "Red flags open during the window: 0", "Remediated since: 0"]
    assert risk[6] == SITE_NAME
    assert risk[7] == f"Window: from {origin[8]} (tagged there) until now"
    assert risk[-1] == "No incident recorded at this site during the window."
    # the timeline: one row per event, the mass at each step
    rows = layout["timeline"]
    assert len(rows) == 4, rows
    assert all(re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC$", row, re.M) for row in rows), rows
    assert rows[0].endswith(f"Tag issued to {SITE_NAME}")
    assert rows[1].startswith("49.800\u00a0kg\n") and f"Put on a bag of ore at {SITE_NAME}" in rows[1]
    assert rows[2].startswith("49.800\u00a0kg\n") and f"Dispatched by {SITE_NAME} to {COOP_NAME}" in rows[2]
    assert "at road N2" in rows[2]
    assert rows[3].startswith("49.750\u00a0kg\n") and f"Received by {COOP_NAME}" in rows[3]
    # "check it yourself" is there but folded: its hashes are not shown until opened
    assert "Check it yourself" in shown
    document = page_world.http.get(f"/v1/tags/{IN_CUSTODY}").json()
    assert document["events"][0]["hash"] not in seen.text
    assert "label" not in seen.text.lower()
    png = (tmp_path / "authentic.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width == 720 and height > 1000  # 360 CSS px at device scale 2, the whole page


def test_authentic_tag_in_french(browser, page_world) -> None:
    seen, _ = browser.open(f"{page_world.url}/t/{IN_CUSTODY}", accept_language=FR)
    assert seen.status == 200 and seen.lang == "fr"
    shown = lines(seen.text)
    assert f"✓ Authentique — sous la garde de {COOP_NAME}" in shown
    assert "Dernière masse enregistrée\u00a0: 49,750\u00a0kg" in shown
    for words in ("Origine", "Site minier", "étain (cassiterite)", "Chaîne de possession, telle qu'elle s'est déroulée",
                  f"Expédiée par {SITE_NAME} à {COOP_NAME}", f"Reçue par {COOP_NAME}", "Vérifiez vous-même",
                  "English"):
        assert words in seen.text, words
    assert not re.search(r"\bAuthentic\b", seen.text)  # (Authenticité, Authentique are French)
    assert "Risques sur les sites d'origine" in shown
    assert "Aucun incident enregistré sur ce site pendant la période." in shown
    # ?lang=en wins over the browser's French
    english, _ = browser.open(f"{page_world.url}/t/{IN_CUSTODY}?lang=en", accept_language=FR)
    assert english.lang == "en" and f"✓ Authentic — in the custody of {COOP_NAME}" in english.text


def test_unknown_tag(browser, page_world) -> None:
    seen, layout = browser.open(f"{page_world.url}/t/{UNKNOWN}", evaluate=LAYOUT)
    assert seen.status == 404
    shown = lines(seen.text)
    assert shown[2:6] == ["Security tag", UNKNOWN, "✕ UNKNOWN TAG — never issued by this ledger",
                          f"No tag {UNKNOWN} was ever issued. Treat the material as untraced."]
    assert json.loads(layout)["verdictBackground"] == "rgb(253, 232, 232)"  # red
    french, _ = browser.open(f"{page_world.url}/t/{UNKNOWN}", accept_language=FR)
    assert french.status == 404 and french.lang == "fr"
    assert "✕ ÉTIQUETTE INCONNUE — jamais émise par ce registre" in french.text
    assert "Traitez le minerai comme non tracé." in french.text


def test_flagged_tag(browser, page_world) -> None:
    """A backdated key revocation: the trader's key was revoked effective before it received KAL-000005."""
    document = page_world.http.get(f"/v1/tags/{FLAGGED}").json()
    if "flags" not in document:
        pytest.skip("flags not implemented: GET /v1/tags/{id} has no `flags` member yet (fraud-flag work)")
    # the flags projection follows the log in the background: wait until it has read the revocation
    entries, deadline = page_world.entries(), time.monotonic() + 10
    while (document.get("flags_position") or 0) < entries and time.monotonic() < deadline:
        time.sleep(0.05)
        document = page_world.http.get(f"/v1/tags/{FLAGGED}").json()
    assert document["verdict"]["code"] == "flagged", document["verdict"]
    [flag] = [f for f in document["flags"] if f["code"] == "custody.revoked_key"]
    assert len(document["flags"]) == 1, document["flags"]
    seen, layout = browser.open(f"{page_world.url}/t/{FLAGGED}", evaluate=LAYOUT)
    layout = json.loads(layout)
    assert seen.status == 200
    shown = lines(seen.text)
    verdict_at = shown.index("! FLAGGED — check before accepting")
    assert shown[verdict_at + 1] == f"1 warning below. Custody status: in the custody of {TRADER_NAME}"
    assert layout["verdictBackground"] == "rgb(255, 244, 220)"  # amber
    warnings = "\n".join(shown[shown.index("Warnings"):shown.index("Origin")])
    assert "Custody passed through an organisation whose key was revoked" in warnings
    for evidence in flag["evidence"]:
        if evidence.get("seq") is not None:
            assert f"log entry #{evidence['seq']}" in warnings
    # the timeline row signed with the revoked key is marked
    received = next(e["seq"] for e in document["events"] if e["type"] == "custody_received")
    assert received in {e["seq"] for e in flag["evidence"]}
    [row] = [r for r in layout["rows"] if r["seq"] == str(received)]
    assert row["text"].endswith("! Evidence for a warning") and TRADER_NAME in row["text"]
    french, _ = browser.open(f"{page_world.url}/t/{FLAGGED}", accept_language=FR)
    assert "! SIGNALÉE — à vérifier avant d'accepter" in french.text
    assert "La chaîne de possession passe par une organisation dont la clé a été révoquée" in french.text
    # the reason in French, with the trader's name and readable dates, no English left from the ledger
    french_warnings = "\n".join(lines(french.text)[lines(french.text).index("Alertes"):
                                                   lines(french.text).index("Origine")])
    assert "a été signée avec la clé" in french_warnings and TRADER_NAME in french_warnings
    assert flag["summary"] not in french_warnings and "revoked" not in french_warnings
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", french_warnings), french_warnings


def test_risk_at_the_origin_sites(browser, page_world) -> None:
    """Incidents at the mine site (page_world's build_risk_story): red flags, their actions, and a lot of two
    sites, in French (the longer words), without sideways scrolling on a phone."""
    build_risk_story(page_world)
    seen, layout = browser.open(f"{page_world.url}/t/{MIXED_LOT}", evaluate=LAYOUT, accept_language=FR)
    assert seen.status == 200 and json.loads(layout)["overflow"] == 0, "the page scrolls sideways at 360 px"
    shown = lines(seen.text)
    risk = shown[shown.index("Risques sur les sites d'origine"):shown.index("Lot")]
    assert "✕ 1 signal d'alerte rouge de la période est toujours ouvert, sans remédiation" in risk
    assert "! Groupes armés" in risk and "✓ Pires formes de travail des enfants" in risk
    assert any(line.startswith("Résumé public") and INCIDENT_SUMMARY in line for line in risk)  # as text
    assert OTHER_SITE_NAME in risk and risk[-1] == "Aucun incident enregistré sur ce site pendant la période."
    boxes = json.loads(browser.open(f"{page_world.url}/t/{IN_CUSTODY}", evaluate=RISK_BOXES)[1])
    assert boxes == {"INC-0001": "rgb(253, 232, 232)", "INC-0002": "rgb(231, 245, 234)",
                     "INC-0003": "rgb(232, 240, 250)"}  # open red flag red, remediated green, dismissed blue


RISK_BOXES = """JSON.stringify(Object.fromEntries([...document.querySelectorAll('#risk .inc')].map(
  box => [box.dataset.incident, getComputedStyle(box).backgroundColor])))"""


def test_dump_dom_and_screenshot_from_the_command_line(dump_dom, page_world, tmp_path) -> None:
    """The one-shot command line of the brief: `chromium --headless ... --dump-dom URL`."""
    dom = dump_dom(f"{page_world.url}/t/{IN_CUSTODY}")
    assert '<html lang="en">' in dom
    assert re.search(r'<section class="box ok" id="verdict" data-verdict="in_custody">', dom)
    assert f"Authentic — in the custody of <strong>{COOP_NAME}</strong>" in dom
    assert dom.count('<li data-seq="') == 4
    escaped = dump_dom(f"{page_world.url}/t/{FLAGGED}")
    assert "&lt;script&gt;alert('x')&lt;/script&gt; &amp; Sons" in escaped and "<script" not in escaped
    shot = tmp_path / "unknown.png"
    dump_dom(f"{page_world.url}/t/{UNKNOWN}", screenshot=shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5_000
