"""GET /v1/reports/due-diligence/{tag_id} over real HTTP, on both backends: JSON and printable HTML.

A lot formed at a processing depot from bags of one mine site, where a monitor reported an armed group (a red
flag) while the ore was in custody, with a corrective action assigned: the report names the bags, the site,
the incident and the action, balances the mass, and carries the proofs.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone

import pytest

from tests.integration.conftest import LiveLedger
from verification.sealed_details import commitment, new_details


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def lot(live_ledger: LiveLedger) -> LiveLedger:
    live = live_ledger
    site = live.register("mine-a", "site", name="Mine A")
    depot = live.register("depot-a", "processor", name="Depot A")
    monitor = live.register("monitor-a", "monitor", name="Monitor A")
    live.operator.issue_tags("mine-a", prefix="BAG-", start=1, count=2)
    live.operator.issue_tags("depot-a", tags=["LOT-0001"])
    for tag in ("BAG-000001", "BAG-000002"):
        site.attach(tag, mineral="cobalt", mass_g=40_000, pit="P7")
        site.dispatch(tag, "depot-a")
        depot.receive(tag, mass_g=40_000)
    details = new_details("Armed men demanded payment at the pit entrance")
    monitor.report_incident("INC-7", site="mine-a", category="armed_groups", severity="high", occurred_at=stamp(),
                            details_sha256=commitment(details), summary="Armed group at the pit")
    live.operator.assign_action("INC-7", "A1", owner="mine-a", description="Suspend sales from the pit",
                                cycle=datetime.now(timezone.utc).strftime("%Y-%m"))
    depot.merge("LOT-0001", ["BAG-000001", "BAG-000002"], mass_g=79_950)
    return live


def test_the_json_report(lot: LiveLedger) -> None:
    response = lot.http.get("/v1/reports/due-diligence/LOT-0001")
    assert response.status_code == 200, response.text
    r = response.json()
    assert r["format"] == "tagledger/dd-report/v1" and r["tag"] == "LOT-0001"
    assert [(i["tag"], i["site"], i["mineral"], i["mass_g"]) for i in r["inputs"]] == [
        ("BAG-000001", "mine-a", "cobalt", 40_000), ("BAG-000002", "mine-a", "cobalt", 40_000)]
    assert r["mass_balance"]["loss_g"] == 50 and r["mass_balance"]["steps"][0]["difference_g"] == -50
    site = r["risk"]["sites"][0]
    assert site["site"] == "mine-a" and site["status_now"] == "red"
    incident = site["incidents"][0]
    assert incident["id"] == "INC-7" and incident["red_flag"] and incident["summary"] == "Armed group at the pit"
    assert incident["actions"][0]["description"] == "Suspend sales from the pit"
    assert "details" not in incident  # the sealed description never appears in a public report
    assert "Armed men demanded" not in response.text
    assert r["summary"]["unremediated_red_flags"] == 1
    events = [e for evs in r["proofs"]["events"].values() for e in evs]
    assert all("envelope" in e and "inclusion_proof" in e for e in events)


def test_the_printable_report(lot: LiveLedger) -> None:
    response = lot.http.get("/v1/reports/due-diligence/LOT-0001", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    text = html.unescape(response.text)
    for expected in ("Due-diligence report", "LOT-0001", "BAG-000001", "BAG-000002", "Mine A", "INC-7",
                     "Red flag", "OECD Annex II: support to non-state armed groups (paragraphs 3-4)", "Suspend sales from the pit",
                     "@page", "Authenticity", "Suspend: temporarily suspend trade"):
        assert expected in text, expected
    same = lot.http.get("/v1/reports/due-diligence/LOT-0001?format=html")
    assert same.status_code == 200 and "INC-7" in same.text


@pytest.mark.parametrize("path, status", [
    ("/v1/reports/due-diligence/NOPE-0001", 404),
    ("/v1/reports/due-diligence/not%20a%20tag", 400),
    ("/v1/reports/due-diligence/LOT-0001?format=xml", 400),
    ("/v1/reports/due-diligence/LOT-0001?format=html&lang=fr_FR!", 400),
    ("/v1/reports/due-diligence/LOT-0001?as_of=0", 400),
    ("/v1/reports/due-diligence/LOT-0001?as_of=abc", 400),
])
def test_bad_requests_are_problems(lot: LiveLedger, path: str, status: int) -> None:
    response = lot.http.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


# --- the decision summary, every fact in the printed report, the PDF, French --------------------------------


def test_the_decision_summary(lot: LiveLedger) -> None:
    r = lot.http.get("/v1/reports/due-diligence/LOT-0001").json()
    decision = r["decision"]
    assert decision["authenticity"] == {**decision["authenticity"], "code": "authentic", "authentic": True,
                                        "integrity_problems": 0}
    assert decision["chain_of_custody"]["bags"] == 2 and decision["chain_of_custody"]["complete"] == 2
    # an unresolved armed-group risk: Annex II paragraph 4 calls for suspending at once
    assert decision["risk"]["step3"]["recommendation"] == "suspend"
    assert [x["incident"] for x in decision["risk"]["step3"]["reasons"]] == ["INC-7"]
    assert [x["action"] for x in decision["risk"]["step3"]["actions"]] == ["A1"]
    assert decision["risk"]["annex_ii"][0]["risk"] == "non_state_armed_groups"
    assert r["orgs"]["mine-a"]["name"] == "Mine A"


def test_a_bags_custody_shows_the_bags_own_mass_not_the_lots(lot: LiveLedger) -> None:
    r = lot.http.get("/v1/reports/due-diligence/LOT-0001").json()
    bag = next(c for c in r["chain"] if c["tag"] == "BAG-000001")
    merge = next(s for s in bag["custody"] if s["type"] == "lot_formed")
    assert merge["mass_g"] == 40_000 and merge["event_mass_g"] == 79_950
    text = html.unescape(lot.http.get("/v1/reports/due-diligence/LOT-0001?format=html&lang=en").text)
    section = text[text.index("BAG-000001 — "):text.index("</table>", text.index("BAG-000001 — "))]
    assert "40.000\u00a0kg" in section and "the event states 79.950\u00a0kg" in section


def _texts(document: str) -> str:
    import re

    document = re.sub(r"<style>.*?</style>", " ", document, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", document)))


def _facts(value: object, path: str = "") -> list[tuple[str, object]]:
    """Every leaf of the JSON report, with its path; the signed envelopes and proofs' hash lists are verification
    data (the printed report gives each event's hash and its proof's tree size, and points to the JSON)."""
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in _facts(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [f for n, v in enumerate(value) for f in _facts(v, f"{path}[{n}]")]
    return [(path, value)]


SKIPPED = (".envelope", ".inclusion_proof.hashes", ".verify", ".mass_balance.note", ".summary")
"""`verify`, the balance's `note` and the server's English `summary` sentences are given in the report's own
words (rep_verify, rep_balance_note, rep_auth_*); `.summary` also covers the counts table, checked below."""


@pytest.mark.parametrize("lang", ["en", "fr", "sw"])
def test_every_fact_of_the_json_is_in_the_printed_report(lot: LiveLedger, lang: str) -> None:
    import re

    from api.i18n import Messages
    from api.report_page import Formats

    lot.ledger.publish_checkpoint()  # no new checkpoint between the two requests (the log does not grow)
    r = lot.http.get("/v1/reports/due-diligence/LOT-0001").json()
    text = _texts(lot.http.get(f"/v1/reports/due-diligence/LOT-0001?format=html&lang={lang}").text)
    t = Messages(lang)
    f = Formats(t)
    times = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")
    missing = []
    for path, value in _facts(r):
        if value is None or isinstance(value, bool) or any(s in path for s in SKIPPED if not path.startswith(".summary.")
                                                           or s != ".summary"):
            continue
        key = path.rsplit(".", 1)[-1].split("[")[0]
        shown: list[str]
        if isinstance(value, str) and times.match(value):
            shown = [f.when(value)]
        elif key in ("mass_g", "attached_g", "final_g", "loss_g", "before_g", "after_g", "event_mass_g"):
            shown = [f.kg(value)]
        elif key == "difference_g":
            shown = [f.grams(value)]
        elif key.endswith("_kg"):
            continue  # the same mass as its `_g`, shown once
        elif key.endswith("ppm"):
            shown = [f.ppm(value)]
        elif key == "minor_per_kg":
            price = r["inputs"][int(path.split("[")[1].split("]")[0])]["price_paid"]
            shown = [f.money(price)]
        elif key == "category":
            shown = [t.term("risk_cat", value)]
        elif key == "severity":
            shown = [t.term("risk_sev", value)]
        elif key == "risk" or (key == "risks" and isinstance(value, str)):
            shown = [t.term("risk_annex", value)]
        elif key in ("status", "custody_status"):
            shown = [t.term("rep_status", value), t.term("rep_incident_status", value),
                     t.term("rep_action_status", value), t(f"risk_status_{value}") if value in ("red", "amber", "green")
                     else "-"]
        elif key == "status_now":
            shown = [t(f"risk_status_{value}")]
        elif key == "type":
            shown = [t.term("event", value)]
        elif key in ("minerals", "mineral"):
            shown = [t.mineral(value)]
        elif key == "role":
            shown = [t.term("role", value)]
        elif key == "recommendation":
            shown = [str(t(f"rep_step3_short_{value}"))]
        elif key == "code" and ".step3.reasons" in path:
            reason = r["decision"]["risk"]["step3"]["reasons"][int(path.split("reasons[")[1].split("]")[0])]
            site = reason["site"]
            shown = [str(t(f"rep_reason_{value}", incident=reason["incident"],
                           site=f"{r['orgs'].get(site, {}).get('name', site)} ({site})"))]
        elif key == "code" and ".authenticity" in path:
            shown = [str(t(f"rep_auth_{value}"))]
        elif key == "code" and ".verdict" in path:
            continue  # the custody status, shown as `status`
        elif key == "last_verification":
            shown = [t.term("rep_verification", value)]
        elif key == "cycle":
            shown = [f.month(value)]
        elif key in ("progress",):
            shown = [str(t("percent", n=value))]
        elif key == "checkpoint":
            shown = [line for line in value.splitlines() if line][:1]
        elif isinstance(value, int):
            shown = [f.count(value), str(value)]
        else:
            shown = [str(value)]
        if not any(s and " ".join(html.unescape(str(s)).split()) in text for s in shown):
            missing.append((path, value, shown))
    assert not missing, missing[:10]


def test_the_pdf_has_the_reports_text_and_pages_that_render(lot: LiveLedger, tmp_path) -> None:
    import shutil
    import subprocess

    if shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None:
        pytest.fail("poppler-utils (pdftotext, pdftoppm) is not installed: `make sysdeps` installs it")
    response = lot.http.get("/v1/reports/due-diligence/LOT-0001?format=pdf&lang=fr")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(response.content)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout
    flat = " ".join(text.split())
    for expected in ("Rapport de diligence raisonnable — LOT-0001", "Suspendre", "INC-7", "BAG-000001",
                     "Mine A", "Groupes armés non étatiques".lower()):
        assert expected.lower() in flat.lower(), expected
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True).stdout
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    assert pages >= 2
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(tmp_path / "page")], check=True)
    images = sorted(tmp_path.glob("page-*.png"))
    assert len(images) == pages and all(p.stat().st_size > 1000 for p in images)
    # the same through Accept
    again = lot.http.get("/v1/reports/due-diligence/LOT-0001", headers={"accept": "application/pdf"})
    assert again.status_code == 200 and again.content.startswith(b"%PDF-")


ENGLISH_WORDS = ("the", "and", "of", "with", "due", "report", "mass", "bags", "while", "none", "status", "holder",
                 "entry", "event", "step", "proof", "risk", "red flag", "unresolved", "suspend", "continue")


def test_the_french_report_reads_as_french(lot: LiveLedger) -> None:
    import re

    lot.ledger.publish_checkpoint()
    document = lot.http.get("/v1/reports/due-diligence/LOT-0001?format=html&lang=fr").text
    assert '<html lang="fr">' in document
    # what the ledger recorded in its users' words (summaries, descriptions) is quoted, not translated: drop the
    # values that come from the report's data, then look for English words and colons without a space before
    r = lot.http.get("/v1/reports/due-diligence/LOT-0001").json()
    document = re.sub(r'<span lang="en">.*?</span>', " ", document, flags=re.S)
    document = re.sub(r"<(code|pre|q)[^>]*>.*?</\1>", " ", document, flags=re.S)
    text = _texts(document)
    for _, value in _facts(r):
        if isinstance(value, str) and len(value) > 3:
            text = text.replace(value, " ")
    words = set(re.findall(r"[a-zà-ÿ]+(?: flag)?", text.lower()))
    leftovers = sorted(w for w in ENGLISH_WORDS if w in words)
    assert not leftovers, leftovers
    bad_colons = re.findall(r"\S.{0,20}[^\s\u00a0\u202f\d/]:(?!//)(?!\d)", text)
    assert not bad_colons, bad_colons[:5]
    assert not re.findall(r"[^\s\u00a0\u202f][;!?](?!\S)", text), "a space is needed before ; ! ?"


def test_rendering_a_pdf_leaves_the_photo_checks_strict() -> None:
    """WeasyPrint's import sets Pillow's process-wide LOAD_TRUNCATED_IMAGES: the server puts it back, so a
    truncated photo upload is still refused after a PDF was made in the same process."""
    from PIL import ImageFile

    from api.report_page import render_pdf
    from ledger import photo
    from tests import photos

    assert render_pdf("<html><body><p>x</p></body></html>").startswith(b"%PDF-")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(photo.PhotoError):
        photo.scan_photo(photos.truncated(photos.png(photos.random_photo())))
    # and even if something turned it on again (another library), the photo check turns it off for itself
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(photo.PhotoError):
            photo.scan_photo(photos.truncated(photos.jpeg(photos.random_photo())))
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_one_pdf_at_a_time(lot: LiveLedger) -> None:
    """A PDF costs seconds of CPU: while one is being made, another request is told to come back (503)."""
    from api.routes_reports import PDF_SLOTS

    assert PDF_SLOTS.acquire(blocking=False)
    try:
        busy = lot.http.get("/v1/reports/due-diligence/LOT-0001?format=pdf")
        assert busy.status_code == 503 and busy.json()["rule"] == "report.busy"
        assert busy.headers["retry-after"] == "5"
        assert lot.http.get("/v1/reports/due-diligence/LOT-0001?format=html").status_code == 200
    finally:
        PDF_SLOTS.release()
    assert lot.http.get("/v1/reports/due-diligence/LOT-0001?format=pdf").status_code == 200
