"""The message catalogue (one JSON file per language, shared by the verification page and the phone app), language
negotiation and number formats.

`api/catalogue/<code>.json` holds every sentence a person reads, in one language: the verification page's
(`GET /t/{tag_id}`) and the phone app's (`/app/`, which loads the same files). Adding a language (Kinyarwanda `rw`,
Lingala `ln`...) is adding one such file: its `@meta` member names the language in itself and gives the rules this
module and the app need (which counts take the singular form, the decimal and grouping separators); every other
member is a message. A unit test checks that every file has the same keys with the same `{placeholders}` as
English.

Why JSON files and not gettext/Babel: the browser app reads them as they are (no .po -> .mo or JavaScript build
step), reviewers read one key per line side by side, and Python and JavaScript fill `{placeholders}` the same simple
way. Catalogue strings are trusted HTML-free text: `Messages.__call__` escapes them and every value put into them
(markupsafe), so a name taken from the ledger can never inject markup.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

CATALOGUE_DIR = Path(__file__).parent / "catalogue"
DEFAULT = "en"
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")


def _load() -> tuple[dict[str, dict[str, str]], dict[str, dict[str, Any]]]:
    messages: dict[str, dict[str, str]] = {}
    meta: dict[str, dict[str, Any]] = {}
    for path in sorted(CATALOGUE_DIR.glob("*.json")):
        if not LANGUAGE_CODE.match(path.stem):
            continue
        document = json.loads(path.read_text(encoding="utf-8"))
        meta[path.stem] = document.pop("@meta")
        messages[path.stem] = document
    return messages, meta


CATALOGUE, META = _load()
LANGUAGES: tuple[str, ...] = (DEFAULT, *sorted(code for code in CATALOGUE if code != DEFAULT))
"""Every language that has a catalogue file, English (the default) first."""


def language_names() -> list[dict[str, str]]:
    """Each language's code and its name in itself (`Français`, `Kiswahili`), in `LANGUAGES` order."""
    return [{"code": code, "name": META[code]["name"]} for code in LANGUAGES]


def _is_one(lang: str, n: Any) -> bool:
    """The plural category `one` (CLDR) of an integer count: `n` is in the language's `plural_one` list (English,
    Swahili: 1; French, Lingala: 0 and 1)."""
    return n in META.get(lang, META[DEFAULT])["plural_one"]


class Messages:
    """`t(key, **values)` -> Markup in one language; values are escaped (a Markup value, e.g. a link, is kept)."""

    def __init__(self, lang: str):
        self.lang = lang if lang in CATALOGUE else DEFAULT
        self._table = CATALOGUE[self.lang]

    def __call__(self, key: str, **values: Any) -> Markup:
        """The message `key`; with a count `n`, its `key_one` or `key_other` form when the catalogue has them."""
        if "n" in values and f"{key}_other" in self._table:
            key += "_one" if _is_one(self.lang, values["n"]) else "_other"
        text = self._table.get(key) or CATALOGUE[DEFAULT][key]
        return Markup(escape(text)).format(**values)  # Markup.format escapes every non-Markup value

    def flag_title(self, code: str) -> str | None:
        """The title of a fraud flag by its code (`flag_title_<code>`); None for a code the catalogue does not know."""
        return self._table.get(f"flag_title_{code}") or CATALOGUE[DEFAULT].get(f"flag_title_{code}")

    def mineral(self, mineral: str | None) -> str:
        if not mineral:
            return ""
        return self._table.get(f"mineral_{mineral}", mineral)

    def reason(self, reason: str | None) -> str:
        if not reason:
            return ""
        return self._table.get(f"reason_{reason}", reason)

    def purpose(self, purpose: str | None) -> str:
        """Why a tag was scanned (`tag_scanned.purpose`), in words; an unknown value as it is."""
        if not purpose:
            return ""
        return self._table.get(f"purpose_{purpose}", purpose)

    def term(self, prefix: str, value: Any) -> str:
        """A coded value in words (`{prefix}_{value}`, e.g. `risk_cat_armed_groups`); an unknown one as it is."""
        if value is None or value == "":
            return ""
        return self._table.get(f"{prefix}_{value}", str(value))

    def mass(self, grams: int | None) -> str:
        return format_mass(grams, self.lang)


# ------------------------------------------------------------------------------------------------
# Language negotiation
# ------------------------------------------------------------------------------------------------

_RANGE = re.compile(r"^\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([0-9.]{1,5})\s*)?$")


def negotiate(accept_language: str | None, override: str | None = None) -> str:
    """The page's language: `override` (?lang=) if it names one we have, else the best `Accept-Language` match
    (RFC 9110 12.5.4: q-values, ties keep the header's order, q=0 means "not this one"), else English.

    `fr-CD`, `fr-FR`… match French; `*` matches the default. A malformed header or range is ignored.
    """
    if override:
        primary = override.strip().lower().split("-")[0]
        if primary in LANGUAGES:
            return primary
    if not accept_language:
        return DEFAULT
    best: tuple[float, int, str] | None = None
    refused: set[str] = set()
    for position, item in enumerate(accept_language[:1000].split(",")[:50]):
        match = _RANGE.match(item)
        if not match:
            continue
        tag, q_text = match.group(1).lower(), match.group(2)
        try:
            q = 1.0 if q_text is None else float(q_text)
        except ValueError:
            continue
        if not 0.0 <= q <= 1.0:
            continue
        primary = tag.split("-")[0]
        lang = DEFAULT if primary == "*" else primary
        if lang not in LANGUAGES:
            continue
        if q == 0.0:
            if primary != "*":
                refused.add(lang)
            continue
        candidate = (q, -position, lang)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:
        return DEFAULT
    if best[2] in refused:  # e.g. "en;q=0, *": the wildcard must not bring back a refused language
        others = [lang for lang in LANGUAGES if lang not in refused]
        return others[0] if others else DEFAULT
    return best[2]


# ------------------------------------------------------------------------------------------------
# Formats
# ------------------------------------------------------------------------------------------------



def format_mass(grams: int | None, lang: str) -> str:
    """Exact kilograms from integer grams: 49800 -> "49.800 kg" (en), "49,800 kg" (fr); 1234567 -> "1,234.567 kg" /
    "1 234,567 kg" (narrow no-break spaces in French)."""
    if grams is None:
        return ""
    sign = "-" if grams < 0 else ""
    kilos, rest = divmod(abs(grams), 1000)
    meta = META.get(lang, META[DEFAULT])
    whole = f"{kilos:,}".replace(",", meta["group"])
    return f"{sign}{whole}{meta['decimal']}{rest:03d}\u00a0kg"


def iso_date(moment: str | None) -> str:
    """`2026-11-23T14:05:09.123Z` -> `2026-11-23` (protocol times are UTC)."""
    if not moment:
        return ""
    return moment[:10]


def iso_minute(moment: str | None) -> str:
    """`2026-11-23T14:05:09.123Z` -> `14:05` (UTC)."""
    if not moment or len(moment) < 16:
        return ""
    return moment[11:16]

