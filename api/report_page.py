"""The printable due-diligence report (HTML, and the PDF made from it): the JSON report in words, in one language.

`render_report(report, lang)` fills api/templates/dd_report.html with the report (ledger.dd_report) and the
formatters below: every code in words from the catalogue (api/catalogue/), times for people, money as an amount,
ppm as a percentage. `render_pdf` lays the same HTML out on A4 pages with WeasyPrint (a well-kept HTML/CSS to PDF
renderer, pure Python over pango: no browser to drive; its `@page` rules are the ones the HTML already has).
"""

from __future__ import annotations

import threading
from datetime import datetime
from fractions import Fraction
from typing import Any

from markupsafe import Markup
from PIL import ImageFile

from api.i18n import META, DEFAULT, Messages
from api.page import TEMPLATES

CURRENCY_EXPONENT = {"BIF": 0, "RWF": 0, "UGX": 0, "XAF": 0, "XOF": 0, "JPY": 0, "KRW": 0}
"""ISO 4217 minor-unit exponents that are not 2 (the protocol's money is integer minor units)."""


def _number(value: Fraction | int, lang: str, decimals: int) -> str:
    meta = META.get(lang, META[DEFAULT])
    sign = "-" if value < 0 else ""
    scaled = round(abs(Fraction(value)) * 10**decimals)
    whole, rest = divmod(scaled, 10**decimals)
    text = f"{whole:,}".replace(",", meta["group"])
    if decimals:
        text += meta["decimal"] + f"{rest:0{decimals}d}"
    return sign + text


class Formats:
    """The formatters the template uses, in the report's language."""

    def __init__(self, t: Messages):
        self.t = t
        self.lang = t.lang

    def when(self, moment: str | None) -> str:
        """`2026-10-24T14:05:09.123Z` -> `24 October 2026, 14:05 UTC` (`24 octobre 2026 à 14:05 UTC`...)."""
        if not moment:
            return ""
        try:
            parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return moment
        return str(self.t("rep_datetime", day=self._day(parsed.day), month=self.t(f"month_{parsed.month}"), year=parsed.year,
                          time=f"{parsed.hour:02d}:{parsed.minute:02d}"))

    def _day(self, day: int) -> str:
        """The day of the month as written before its name: `1er` in French (premier), else the number."""
        return str(self.t("rep_first_day")) if day == 1 else str(day)

    def day(self, moment: str | None) -> str:
        if not moment:
            return ""
        parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        return str(self.t("rep_date", day=self._day(parsed.day), month=self.t(f"month_{parsed.month}"), year=parsed.year))

    def month(self, cycle: str | None) -> str:
        """A cycle `2026-11` -> `November 2026`."""
        if not cycle or len(cycle) != 7:
            return cycle or ""
        return f"{self.t(f'month_{int(cycle[5:])}')} {cycle[:4]}"

    def money(self, price: dict[str, Any] | None) -> str:
        """`{"currency": "USD", "minor_per_kg": 253}` -> `2.53 USD/kg` (`2,53 USD/kg`)."""
        if not price:
            return ""
        exponent = CURRENCY_EXPONENT.get(price["currency"], 2)
        amount = _number(Fraction(price["minor_per_kg"], 10**exponent), self.lang, exponent)
        return str(self.t("rep_money_per_kg", amount=amount, currency=price["currency"]))

    def ppm(self, ppm: int | None) -> str:
        """A share in parts per million as a percentage with 2 decimals: 23625 -> `2.36%` (`2,36 %`)."""
        if ppm is None:
            return ""
        return str(self.t("percent", n=_number(Fraction(ppm, 10_000), self.lang, 2)))

    def kg(self, grams: int | None) -> str:
        return self.t.mass(grams)

    def grams(self, grams: int | None) -> str:
        if grams is None:
            return ""
        return f"{_number(grams, self.lang, 0)}\u00a0g"

    def count(self, n: int | None) -> str:
        return "" if n is None else _number(n, self.lang, 0)

    def yes(self, value: Any) -> str:
        return str(self.t("rep_yes" if value else "rep_no"))


def render_report(report: dict[str, Any], lang: str, names: dict[str, str] | None = None) -> str:
    """The report as an HTML document in `lang` (English if the catalogue has no such language)."""
    t = Messages(lang)
    known = {org: record["name"] for org, record in (report.get("orgs") or {}).items() if record.get("name")}
    known.update(names or {})
    for doc in report["chain"]:
        for step in doc["custody"]:
            if step.get("actor_name"):
                known.setdefault(step["actor"], step["actor_name"])
    for site in (report.get("risk") or {}).get("sites") or []:
        if site.get("site_name"):
            known.setdefault(site["site"], site["site_name"])
    for key in report["proofs"]["keys"].values():
        if key.get("org_name"):
            known.setdefault(key["org"], key["org_name"])
    if report["subject"].get("holder_name"):
        known.setdefault(report["subject"]["holder"], report["subject"]["holder_name"])

    def name(org: str | None) -> str:
        return "" if not org else known.get(org, org)

    return TEMPLATES.get_template("dd_report.html").render(r=report, t=t, f=Formats(t), lang=t.lang, name=name,
                                                            Markup=Markup)


_RENDERER: Any = None
_RENDERER_LOCK = threading.Lock()


def _renderer() -> Any:
    """WeasyPrint's `HTML`, imported once. Importing it sets Pillow's process-wide `LOAD_TRUNCATED_IMAGES` to
    True, which would make the photo checks (ledger.photo) accept truncated uploads: the flag is put back at once
    (the report has no images, so WeasyPrint never needs it), and ledger.photo turns it off again before each
    decode, so an upload checked while the first PDF's import runs is not let through either. Imported on the
    first PDF, not at start: it costs each server worker half a second of CPU that most never need."""
    global _RENDERER
    with _RENDERER_LOCK:
        if _RENDERER is None:
            before = ImageFile.LOAD_TRUNCATED_IMAGES
            try:
                from weasyprint import HTML
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = before
            _RENDERER = HTML
    return _RENDERER


def render_pdf(html: str) -> bytes:
    """The HTML report laid out as a PDF (A4, the report's own `@page` rules). Raises ImportError or OSError
    when WeasyPrint or its system libraries (pango) are missing."""
    return _renderer()(string=html).write_pdf()

