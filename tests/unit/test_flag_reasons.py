"""Fraud flags in the reader's language (api/flag_reasons.py): every kind of flag is built by domain/flags.py itself,
so a change of the ledger's English wording fails here instead of silently falling back to English."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from fractions import Fraction

import pytest

from api.flag_reasons import FlagExplainer
from api.i18n import LANGUAGES, Messages
from domain import flags as rules
from domain.custody import Status, TagState
from domain.registry import StreamHead

NAMES = {"kal-site": "Kalimbi Site", "coop": "Coop Nyabibwe", "trader": "Trader Bukavu", "refiner": "Refinery BE"}
T0 = "2026-11-23T08:15:00.000000Z"


def names(org: str | None) -> str:
    return NAMES.get(org or "", org or "?")


def event(seq: int, kind: str, actor: str, time: str, data: dict, stream: str = "tag:KAL-1") -> dict:
    return {"seq": seq, "envelope": {"body": {"type": kind, "actor": actor, "time": time, "stream": stream,
                                              "data": data}, "sig": "x"}}


def explain(flag: dict, lang: str, events: list[dict] = ()):
    return FlagExplainer(Messages(lang), names, {e["seq"]: e for e in events}).explain(flag)


def public(flag: rules.Flag) -> dict:
    return {"code": flag.code, "summary": flag.summary, "evidence": [e.to_json() for e in flag.evidence]}


def english_left(text: str) -> list[str]:
    """Fragments of the ledger's English (or raw protocol values) that must not reach a French page."""
    words = ("entry #", "recorded", "signed with", "was later revoked", "attempted", "starting mass", "tagged ",
             "more than", " kg at ", "custody_", "tag_", "T08:", "Z ", "kal-site", " by ")
    return [w for w in words if w in text]


def travel() -> tuple[rules.Flag, list[dict]]:
    earlier = rules.Fix("KAL-1", 5, "a" * 64, "2026-11-23T08:15:00.000000Z", "-2.5000000", "28.8000000",
                        "tag_attached")
    later = rules.Fix("KAL-1", 9, "b" * 64, "2026-11-23T09:15:00.000000Z", "-4.5000000", "28.8000000",
                      "custody_received")
    flag = rules.travel_flag(earlier, later)
    events = [event(5, "tag_attached", "kal-site", earlier.time, {"gps": {"lat": earlier.lat, "lon": earlier.lon}}),
              event(9, "custody_received", "coop", later.time, {"gps": {"lat": later.lat, "lon": later.lon}})]
    return flag, events


def test_travel_in_french_with_the_ledgers_numbers() -> None:
    flag, events = travel()
    text = explain(public(flag), "fr", events)
    assert text.reason is not None
    distance = rules.haversine_km("-2.5000000", "28.8000000", "-4.5000000", "28.8000000")
    assert f"{distance:.0f}" == "222"
    assert text.reason == ("Étiquette peut-être clonée\u00a0: enregistrée en deux lieux distants de 222\u00a0km, à "
                           "60\u00a0min d&#39;intervalle (222\u00a0km/h)\u00a0; aucun transport de minerai ne dépasse "
                           "150\u00a0km/h.")
    # both items are events of this tag (their timeline rows say what they were): each note is said in French too
    assert text.notes[0] == "pose de l&#39;étiquette sur un sac de KAL-1 à -2.5000000, 28.8000000, le 2026-11-23 08:15 UTC"
    # the same flag without the events (a lot's chain: the first position is another tag's) still reads
    assert explain(public(flag), "fr").reason == text.reason


def test_scan_after_the_end_in_swahili() -> None:
    end = rules.end_evidence("KAL-1", {"type": "tag_consumed", "data": {}, "actor": "refiner", "stream": "tag:KAL-1",
                                       "time": "2026-11-20T10:00:00Z"}, "c" * 64, 12)
    scan = {"type": "tag_scanned", "actor": "trader", "time": "2026-11-23T09:00:00Z", "stream": "tag:KAL-1",
            "data": {"gps": {"lat": "-2.5", "lon": "28.8"}, "location": "Bukavu market", "purpose": "purchase"}}
    flag = rules.scanned_after_end_flag("KAL-1", end, scan, "d" * 64, 15)
    text = explain(public(flag), "sw", [{"seq": 15, "envelope": {"body": scan}}])
    assert text.reason == ("Imeskaniwa na <strong>Trader Bukavu</strong> tarehe 2026-11-23 09:00 UTC, baada ya "
                           "maisha ya lebo kwisha: KAL-1 ilitumika kwenye <strong>Refinery BE</strong> tarehe "
                           "2026-11-20 10:00 UTC. Lebo inayoonekana baada ya mwisho wake huenda imetumika tena "
                           "kwenye madini mengine.")
    assert text.notes[0] == ("KAL-1 ilitumika kwenye <strong>Refinery BE</strong> tarehe 2026-11-20 10:00 UTC")
    assert text.notes[1] is None  # the scan is this tag's event: the page shows its timeline row instead


def test_refused_attempts() -> None:
    state = TagState("KAL-1", "kal-site", StreamHead("c" * 64, 30, datetime(2026, 11, 22, tzinfo=timezone.utc)),
                     status=Status.VOIDED, void_reason="stolen")
    attempts = [rules.Attempt("KAL-1", "tag.finished", "2026-11-24T10:00:00.000000Z", 40, "e" * 64,
                              {"type": "custody_dispatched", "actor": "coop", "time": "2026-11-24T09:59:00Z"}),
                rules.Attempt("KAL-1", "tag.already_attached", "2026-11-25T10:00:00.000000Z", 41, "f" * 64,
                              {"type": "tag_attached", "actor": "kal-site", "time": "2026-11-25T09:00:00Z"})]
    end = rules.end_evidence("KAL-1", {"type": "tag_voided", "data": {"reason": "stolen"}, "actor": "coop",
                                       "stream": "tag:KAL-1", "time": "2026-11-22T10:00:00Z"}, "c" * 64, 30)
    flag = rules.attempts_flag(attempts, state, "c" * 64, end)
    text = explain(public(flag), "fr")
    assert text.reason == ("2 événements ont été tentés sur cette étiquette après qu&#39;elle a été annulée (volée), "
                           "signés par <strong>Coop Nyabibwe</strong>, <strong>Kalimbi Site</strong>\u00a0: le registre "
                           "les a refusés et les garde comme preuves\u00a0; l&#39;étiquette a peut-être été réutilisée "
                           "sur d&#39;autres minerais.")
    assert text.notes[0] == ("KAL-1 a été annulée (volée) par <strong>Coop Nyabibwe</strong> le 2026-11-22 10:00 UTC")
    assert text.notes[1] == ("expédition par <strong>Coop Nyabibwe</strong> daté du 2026-11-24 09:59 UTC, refusé (la vie "
                             "de cette étiquette est terminée (consommée, annulée, fusionnée ou divisée)) le 2026-11-24 "
                             "10:00 UTC")
    assert not english_left(str(text.reason) + "".join(map(str, text.notes)))


def test_mass_gain_lot_heavier_and_capacity() -> None:
    chain = rules.ChainState("KAL-1", mass=49_800, start=Fraction(49_800), start_seq=5, start_hash="a" * 64)
    gain = rules.mass_gain_flag(chain, 52_000, 9, "b" * 64, "received", 20_000)
    text = explain(public(gain), "fr")
    assert text.reason == ("Masse en hausse le long de la chaîne\u00a0: 52,000\u00a0kg à l&#39;entrée n° 9 (réception) "
                           "contre une masse de départ de 49,800\u00a0kg (entrée n° 5), soit 4,42\u00a0% de plus, au-delà "
                           "de la tolérance de 2,00\u00a0%.")
    assert text.notes == ["masse de départ de la chaîne\u00a0: 49,800\u00a0kg", "réception\u00a0: 52,000\u00a0kg"]

    heavier = rules.lot_heavier_flag("LOT-1", 101_000, 100_000, 20, "c" * 64)
    text = explain(public(heavier), "en")
    assert text.reason == ("Lot LOT-1 was formed at 101.000\u00a0kg, more than the 100.000\u00a0kg of the tags it was "
                           "made from (entry #20): ore may have been added.")
    split = rules.lot_heavier_flag("LOT-1", 1_234_567, 1_200_000, 21, "d" * 64, split=True)
    assert explain(public(split), "fr").notes == ["division\u00a0: étiquettes issues 1\u202f234,567\u00a0kg, lot "
                                                  "1\u202f200,000\u00a0kg"]

    month = rules.MonthTotal("kal-site", "2026-11", total_g=990_000)
    first = rules.add_to_month(month, 20_000, 1_000, "KAL-7", 30, "e" * 64)
    later = rules.add_to_month(month, 5_000, 1_000, "KAL-8", 31, "f" * 64)
    assert explain(public(first), "fr").reason == (
        "Le site <strong>Kalimbi Site</strong> a étiqueté 1\u202f010,000\u00a0kg en 2026-11, plus que sa capacité "
        "déclarée de 1\u202f000,000\u00a0kg par mois\u00a0; ce sac lui a fait dépasser la capacité.")
    text = explain(public(later), "sw")
    assert text.reason.endswith("mfuko huu uliwekewa lebo baada ya jumla kuzidi (ingizo Na. 30).")
    assert text.notes == ["mfuko uliozidisha uwezo wa eneo (KAL-7)",
                          "KAL-8 iliwekewa lebo ikiwa na 5.000\u00a0kg; jumla ya mwezi inakuwa 1,015.000\u00a0kg"]


def test_revoked_key_and_inheritance() -> None:
    use = rules.KeyUse(12, "a" * 64, {"type": "custody_dispatched", "actor": "coop", "time": "2026-11-23T08:15:00Z"})
    revocation = {"type": "key_revoked", "stream": "org:coop", "time": "2026-11-25T00:00:00Z",
                  "data": {"key": "0123456789abcdef", "reason": "phone stolen <b>", "effective": "2026-11-20T00:00:00Z"}}
    flag = rules.revoked_key_flag(use, 30, "b" * 64, revocation)
    text = explain(public(flag), "fr")
    assert text.reason == ("L&#39;entrée n° 12 (expédition par <strong>Coop Nyabibwe</strong>, datée du 2026-11-23 08:15 "
                           "UTC) a été signée avec la clé 0123456789abcdef, révoquée par la suite avec effet au "
                           "2026-11-20 00:00 UTC (entrée n° 30\u00a0: phone stolen &lt;b&gt;)\u00a0: quiconque détenait la "
                           "clé compromise a pu la signer.")  # the reason is free text, as recorded (and escaped)
    assert text.notes[1] == ("clé 0123456789abcdef de <strong>Coop Nyabibwe</strong> révoquée avec effet au 2026-11-20 "
                             "00:00 UTC\u00a0: phone stolen &lt;b&gt;")
    # inherited, from one tag and from several: the same reason, the page lists where it comes from
    shown = rules.tag_flags("LOT-1", [], [("KAL-1", "a tag that went into this lot", [flag])])
    assert explain(shown[0], "fr").reason == text.reason
    shown = rules.tag_flags("LOT-1", [], [("KAL-1", "a tag that went into this lot", [flag]),
                                           ("KAL-2", "a tag that went into this lot", [flag])])
    assert explain(shown[0], "fr").reason == text.reason


def test_unknown_wording_falls_back_to_the_ledgers_english() -> None:
    text = explain({"code": "mass.gain", "summary": "Something new happened.",
                    "evidence": [{"seq": 3, "hash": "a" * 64, "note": "a note in English"}]}, "fr")
    assert text.reason is None and text.notes == [None]
    assert explain({"code": "x.new", "summary": "?", "evidence": []}, "fr").reason is None


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_language_explains_every_kind(lang: str) -> None:
    flag, events = travel()
    built = [public(flag),
             public(rules.lot_heavier_flag("LOT-1", 101_000, 100_000, 20, "c" * 64)),
             public(rules.mass_gain_flag(rules.ChainState("KAL-1", 1000, Fraction(1000), 1, "a" * 64), 2000, 2,
                                         "b" * 64, "dispatched", 0))]
    for doc in built:
        text = explain(doc, lang, events)
        assert text.reason is not None and None not in text.notes, (lang, doc["summary"])
        assert not re.search(r"{\w+}", str(text.reason)), "a placeholder was left unfilled"


def test_late_record() -> None:
    """`time.late_record` (a flag of main's issue 10 work): said in words once domain/flags.py has it."""
    late = getattr(rules, "late_record_flag", None)
    if late is None:
        pytest.skip("domain/flags.py has no late_record_flag on this branch yet")
    body = {"type": "custody_received", "actor": "coop", "time": "2026-01-02T08:00:00Z", "stream": "tag:KAL-1"}
    flag = late("KAL-1", body, "a" * 64, 40, "2026-06-01T10:00:00.000000Z")
    text = explain(public(flag), "fr")
    assert text.reason is not None and "Coop Nyabibwe" in text.reason and "2026-01-02 08:00 UTC" in text.reason
    assert text.notes[0] is not None and "réception par <strong>Coop Nyabibwe</strong>" in text.notes[0]
