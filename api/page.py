"""The verification page for people (`GET /t/{tag_id}`): from a tag document to HTML.

`tag_page_model` turns a `tagledger/tag-view/v1` document (ledger.views.tag_document, the very data of
`GET /v1/tags/{id}`) into plain values for the template, every sentence taken from the message catalogue
(api/i18n.py) in the reader's language. The templates (api/templates/) only lay them out; jinja2 escapes every
value (autoescape on), and catalogue sentences are Markup built with escaped values.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from api.flag_reasons import FlagExplainer
from verification.oecd_step3 import recommend
from api.i18n import Messages, iso_date, iso_minute

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=StrictUndefined,
    auto_reload=False,
)

MAX_LISTED = 200  # origins, inputs and outputs listed one by one; the JSON document has all of them
GZIP_MIN_BYTES = 1024

GREEN, BLUE, AMBER, RED = "ok", "info", "warn", "bad"


# ------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------


def tag_href(tag: str, lang: str | None = None) -> str:
    """The page of another tag, keeping an explicit `?lang=` choice."""
    href = "/t/" + quote(tag, safe="")
    return href + ("?" + urlencode({"lang": lang}) if lang else "")


def tag_link(tag: str, lang: str | None) -> Markup:
    return Markup('<a href="{}">{}</a>').format(tag_href(tag, lang), tag)


def strong(text: str) -> Markup:
    return Markup("<strong>{}</strong>").format(text)


def _gps(gps: Any) -> dict[str, str] | None:
    """{lat, lon} as given (decimal strings), with a `geo:` URI that opens the phone's map application."""
    if not isinstance(gps, dict) or "lat" not in gps or "lon" not in gps:
        return None
    lat, lon = str(gps["lat"]), str(gps["lon"])
    return {"text": f"{lat}, {lon}", "href": f"geo:{quote(lat, safe='.-')},{quote(lon, safe='.-')}"}


class Names:
    """Organisation names from the key registry (falls back to the id)."""

    def __init__(self, registry: Any | None, document: dict[str, Any] | None = None):
        self._orgs = getattr(registry, "orgs", {}) or {}
        self._known: dict[str, str] = {}
        for event in (document or {}).get("events", []):
            if event.get("actor_name"):
                self._known[event["actor"]] = event["actor_name"]
        for origin in (document or {}).get("origins", []):
            if origin.get("site_name"):
                self._known[origin["site"]] = origin["site_name"]

    def __call__(self, org: str | None) -> str:
        if not org:
            return "?"
        record = self._orgs.get(org)
        return getattr(record, "name", None) or self._known.get(org) or org

    def rmi_cid(self, org: str | None) -> str | None:
        record = self._orgs.get(org or "")
        return getattr(record, "rmi_cid", None)


# ------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------


def _status_sentence(t: Messages, state: dict[str, Any], names: Names, lang: str | None, prefix: str) -> Markup:
    """The custody status in words: `verdict_<status>` (headline) or `status_<status>` (inside a sentence)."""
    status = state.get("status") or "issued"
    holder = strong(names(state.get("holder")))
    values: dict[str, Any] = {
        "issued": {},
        "in_custody": {"holder": holder},
        "in_transit": {"holder": holder, "recipient": strong(names(state.get("pending_recipient")))},
        "merged": {"lot": tag_link(state.get("lot") or "?", lang)},
        "split": {"n": len(state.get("outputs") or [])},
        "consumed": {"refiner": holder},
        "voided": {"reason": t.reason(state.get("void_reason"))},
    }.get(status)
    if values is None:
        return Markup("{}").format(status)
    return t(f"{prefix}_{status}", **values)


def verdict_model(t: Messages, document: dict[str, Any], names: Names, lang: str | None) -> dict[str, Any]:
    verdict = document.get("verdict") or {}
    state = document.get("state") or {}
    code = verdict.get("code") or state.get("status") or "unknown"
    details: list[Markup] = []
    problems: list[str] = []
    if code == "integrity_failed":
        tone, mark = RED, "✕"
        headline = t("verdict_integrity_failed")
        details.append(t("verdict_integrity_failed_detail"))
        problems = [str(p) for p in document.get("problems") or []]
    elif code == "flagged":
        tone, mark = (RED, "✕") if verdict.get("custody_status") == "voided" else (AMBER, "!")
        headline = t("verdict_flagged")
        custody = {**state, "status": verdict.get("custody_status") or state.get("status")}
        details.append(t("verdict_flagged_detail", n=len(document.get("flags") or []),
                         status=_status_sentence(t, custody, names, lang, "status")))
    elif code == "voided":
        tone, mark = RED, "✕"
        headline = _status_sentence(t, state, names, lang, "verdict")
    elif code in ("in_custody", "in_transit", "issued"):
        tone, mark = GREEN, "✓"
        headline = _status_sentence(t, state, names, lang, "verdict")
        if code == "issued":
            details.append(t("verdict_issued_detail", org=strong(names(state.get("issued_to")))))
    elif code in ("consumed", "merged", "split"):
        tone, mark = BLUE, "✓"
        headline = _status_sentence(t, state, names, lang, "verdict")
        if code == "consumed":
            refiner = verdict.get("refiner") or {}
            cid = refiner.get("rmi_cid") or names.rmi_cid(state.get("holder"))
            if cid:
                details.append(t("verdict_rmi", cid=cid))
            details.append(t("verdict_consumed_detail"))
        elif code == "merged":
            details.append(t("verdict_merged_detail"))
    else:  # a verdict this page does not know yet: say what the server says, in its words
        tone, mark = AMBER, "?"
        headline = Markup("{}").format(verdict.get("summary") or code)
    if code not in ("integrity_failed",) and state.get("mass_g") is not None and code != "issued":
        details.append(t("current_mass", mass=t.mass(state.get("mass_g"))))
    return {"code": code, "tone": tone, "mark": mark, "headline": headline, "details": details,
            "problems": problems}


def origins_model(t: Messages, document: dict[str, Any], names: Names, lang: str | None) -> dict[str, Any]:
    origins = document.get("origins") or []
    items = []
    for origin in origins:
        items.append({
            "tag": origin.get("tag") or "",
            "href": tag_href(origin.get("tag") or "", lang),
            "self": origin.get("tag") == document.get("tag"),
            "site": names(origin.get("site")) if not origin.get("site_name") else origin["site_name"],
            "mineral": t.mineral(origin.get("mineral")),
            "ore": origin.get("ore") or "",
            "pit": origin.get("pit") or "",
            "date": iso_date(origin.get("attached_at")),
            "gps": _gps(origin.get("gps")),
        })
    sites: dict[str, dict[str, Any]] = {}
    for item, origin in zip(items, origins):
        site = sites.setdefault(origin.get("site") or "?", {
            "site": item["site"], "minerals": [], "pits": [], "bags": 0, "first": item["date"], "last": item["date"],
            "gps": item["gps"],
        })
        site["bags"] += 1
        for key, value in (("minerals", item["mineral"]), ("pits", item["pit"])):
            if value and value not in site[key]:
                site[key].append(value)
        if item["date"]:
            site["first"] = min(site["first"] or item["date"], item["date"])
            site["last"] = max(site["last"] or item["date"], item["date"])
    return {
        "single": items[0] if len(items) == 1 else None,
        "sites": list(sites.values()),
        "count": len(items),
        "summary": t("origin_summary", n=len(items)) if len(items) > 1 else None,
        "listed": items[:MAX_LISTED],
        "more": max(0, len(items) - MAX_LISTED),
    }


RISK_STATUS_TONES = {"red": RED, "amber": AMBER, "green": GREEN}


def _action_row(t: Messages, action: dict[str, Any], names: Names) -> dict[str, Any]:
    """One corrective action: what, who, when it was due, and how it ended (or where it stands)."""
    status = action.get("status")
    outcome: list[Markup] = []
    if status == "implemented":
        tone = GREEN
        outcome.append(t("risk_action_implemented", date=iso_date(action.get("implemented_at"))))
    elif status == "cancelled":
        tone = BLUE
        outcome.append(t("risk_action_cancelled"))
    elif status == "open":
        tone = AMBER
        if action.get("overdue"):
            tone = RED
            outcome.append(t("risk_action_overdue"))
        if action.get("last_verification") == "not_implemented":
            tone = RED
            outcome.append(t("risk_action_not_implemented"))
        if not outcome:
            outcome.append(t("risk_action_open"))
        if isinstance(action.get("progress"), int):
            outcome.append(t("risk_action_progress", percent=action["progress"]))
    else:  # a status this page does not know yet: as the server says it
        tone = AMBER
        outcome.append(Markup("{}").format(status or "?"))
    return {
        "action": str(action.get("action") or ""),
        "text": t("risk_action", description=action.get("description") or "", owner=strong(names(action.get("owner"))),
                  due=iso_date(action.get("due"))),
        "outcome": Markup(" · ").join(outcome),
        "tone": tone,
    }


def _incident_row(t: Messages, incident: dict[str, Any], names: Names, as_of: int | None) -> dict[str, Any]:
    """One incident, in its public form (protocol 16.5): never its sealed details."""
    status = str(incident.get("status") or "")
    red_flag = bool(incident.get("red_flag"))
    remediated = bool(incident.get("remediated"))
    is_open = status in ("reported", "confirmed")
    if is_open:
        tone, mark = (RED, "!") if red_flag else (AMBER, "!")
    else:
        tone, mark = (GREEN, "✓") if remediated else (BLUE, "–")
    if status in ("dismissed", "closed"):
        status_text = t(f"risk_incident_{status}", date=iso_date(incident.get("resolved_at")))
    elif status in ("reported", "confirmed"):
        status_text = t(f"risk_incident_{status}")
    else:
        status_text = Markup("{}").format(status or "?")
    category = str(incident.get("category") or "")
    if category == "child_labour" and incident.get("worst_forms"):
        category = "child_labour_worst_forms"
    annex = [t("risk_annex_ii", risk=t.term("risk_annex", item.get("risk")), paragraphs=item.get("paragraphs") or "")
             for item in incident.get("annex_ii") or [] if isinstance(item, dict)]
    ident = str(incident.get("id") or "")
    people = incident.get("people_affected")
    return {
        "id": ident,
        "href": "/v1/incidents/" + quote(ident, safe="") + (f"?as_of={as_of}" if as_of is not None else ""),
        "tone": tone,
        "mark": mark,
        "category": t.term("risk_cat", category),
        "red_flag": red_flag,
        "severity": t.term("risk_sev", incident.get("severity")),
        "status": status_text,
        "remediated": remediated,
        "occurred": iso_date(incident.get("occurred_at")),
        "reported": iso_date(incident.get("reported_at")),
        "annex_ii": annex,
        "summary": str(incident.get("summary") or ""),
        "people": t("risk_people", n=people) if isinstance(people, int) else None,
        "referred": t("risk_referred", org=strong(names(incident["referred_to"])))
        if incident.get("referred_to") else None,
        "actions": [_action_row(t, a, names) for a in incident.get("actions") or [] if isinstance(a, dict)],
    }


def risk_model(t: Messages, document: dict[str, Any], names: Names, as_of: int | None) -> dict[str, Any] | None:
    """The risk context of the origin sites (protocol 16.6): per site, the incidents open at some time between
    the ore's tagging there and the end of the tag's custody, and how they were remediated."""
    risk = document.get("risk")
    if not isinstance(risk, dict) or not risk.get("sites"):
        return None
    sites = []
    for site in risk["sites"]:
        if not isinstance(site, dict):
            continue
        window = site.get("window") or {}
        status = str(site.get("status_now") or "")
        ongoing = as_of is None and window.get("to") is not None and window.get("to") == risk.get("at")
        sites.append({
            "site": site.get("site_name") or names(site.get("site")),
            "status": t("risk_status", status=Markup('<strong class="st {}">{}</strong>').format(
                RISK_STATUS_TONES.get(status, AMBER),
                t(f"risk_status_{status}") if status in RISK_STATUS_TONES else status)),
            "window": t("risk_window_now" if ongoing else "risk_window", start=iso_date(window.get("from")),
                        end=iso_date(window.get("to"))),
            "incidents": [_incident_row(t, i, names, as_of) for i in site.get("incidents") or []
                          if isinstance(i, dict)],
        })
    step3 = recommend(i for site in risk["sites"] if isinstance(site, dict) for i in site.get("incidents") or []
                      if isinstance(i, dict)).recommendation
    red, remediated, unremediated = (int(risk.get(key) or 0) for key in
                                     ("open_red_flags_in_window", "remediated", "unremediated"))
    tone, mark = (RED, "✕") if unremediated else (AMBER, "!") if red else (GREEN, "✓")
    return {
        "sites": sites,
        "step3": step3,
        "tone": tone,
        "mark": mark,
        "headline": t("risk_headline_unremediated", n=unremediated) if unremediated
        else t("risk_headline_red", n=red) if red else t("risk_headline_none"),
        "counts": [t("risk_count_red", count=strong(str(red))),
                   t("risk_count_remediated", count=strong(str(remediated))),
                   t("risk_count_unremediated", count=strong(str(unremediated)))],
    }


def relations_model(t: Messages, document: dict[str, Any], lang: str | None) -> list[dict[str, Any]]:
    state = document.get("state") or {}
    rows: list[dict[str, Any]] = []
    if state.get("lot"):
        rows.append({"text": t("rel_lot", lot=tag_link(state["lot"], lang)), "tags": [], "more": 0})
    if state.get("parent"):
        rows.append({"text": t("rel_parent", parent=tag_link(state["parent"], lang)), "tags": [], "more": 0})
    for key, tags in (("rel_inputs", state.get("inputs") or []), ("rel_outputs", state.get("outputs") or [])):
        if tags:
            rows.append({
                "text": t(key, n=len(tags)),
                "tags": [{"tag": tag, "href": tag_href(tag, lang)} for tag in tags[:MAX_LISTED]],
                "more": max(0, len(tags) - MAX_LISTED),
            })
    return rows


def _event_row(t: Messages, event: dict[str, Any], tag: str, names: Names, lang: str | None) -> dict[str, Any]:
    body = (event.get("envelope") or {}).get("body") or {}
    data = body.get("data") or {}
    kind = event.get("type") or body.get("type") or "?"
    actor_id = event.get("actor") or body.get("actor")
    actor = strong(event.get("actor_name") or names(actor_id))
    stream = body.get("stream") or ""
    mine = stream == f"tag:{tag}"
    mass: int | None = data.get("mass_g") if isinstance(data.get("mass_g"), int) else None
    extra: list[Markup] = []
    if kind == "tags_issued":
        title = t("ev_tags_issued", org=strong(names(stream.removeprefix("org:"))))
    elif kind == "tag_attached":
        title = t("ev_tag_attached", site=strong(names(data.get("site") or actor_id)))
        if data.get("pit"):
            extra.append(t("pit", pit=data["pit"]))
        if data.get("mineral"):
            extra.append(Markup("{}").format(t.mineral(data["mineral"]) +
                                             (f" ({data['ore']})" if data.get("ore") else "")))
    elif kind == "custody_dispatched":
        title = t("ev_custody_dispatched", actor=actor, to=strong(names(data.get("to"))))
    elif kind == "custody_received":
        title = t("ev_custody_received", actor=actor)
    elif kind == "lot_formed":
        if mine:
            title = t("ev_lot_formed_lot", actor=actor, n=len(data.get("inputs") or []))
        else:
            title = t("ev_lot_formed_input", actor=actor, lot=tag_link(stream.removeprefix("tag:"), lang))
            mass = None  # the lot's mass, not this bag's
    elif kind == "lot_split":
        outputs = data.get("outputs") or []
        if mine:
            title = t("ev_lot_split_lot", actor=actor, n=len(outputs))
            mass = None
        else:
            title = t("ev_lot_split_output", actor=actor, parent=tag_link(stream.removeprefix("tag:"), lang))
            mass = next((o.get("mass_g") for o in outputs if isinstance(o, dict) and o.get("tag") == tag), None)
    elif kind == "tag_consumed":
        title = t("ev_tag_consumed", actor=actor)
        if data.get("product"):
            extra.append(t("product", product=data["product"]))
    elif kind == "tag_voided":
        title = t("ev_tag_voided", actor=actor, reason=t.reason(data.get("reason")))
        if data.get("note"):
            extra.append(t("note", note=data["note"]))
    elif kind == "tag_scanned":  # a signed sighting: no custody, but evidence (section 9.1)
        location = data.get("location") if isinstance(data.get("location"), str) else None
        purpose = t.purpose(data.get("purpose")) if isinstance(data.get("purpose"), str) else ""
        key = "ev_tag_scanned" + ("_at" if location else "") + ("_purpose" if purpose else "")
        title = t(key, actor=actor, location=location or "", purpose=purpose)
    else:
        title = t("ev_other", type=kind, actor=actor)
    if data.get("location") and kind != "tag_scanned":  # a scan's location is in its title
        extra.append(t("at_location", location=data["location"]))
    return {
        "seq": event.get("seq"),
        "date": iso_date(body.get("time") or event.get("time")),
        "time": iso_minute(body.get("time") or event.get("time")),
        "title": title,
        "mass": t.mass(mass) if mass is not None else "",
        "extra": extra,
        "gps": _gps(data.get("gps")) if kind != "tags_issued" else None,
    }


def proofs_model(document: dict[str, Any], names: Names) -> list[dict[str, Any]]:
    keys = document.get("keys") or {}
    rows = []
    for event in document.get("events") or []:
        envelope = event.get("envelope") or {}
        body = envelope.get("body") or {}
        kid = body.get("key") or ""
        signer = keys.get(kid) or {}
        proof = event.get("inclusion_proof")
        rows.append({
            "seq": event.get("seq"),
            "type": event.get("type") or body.get("type") or "",
            "hash": event.get("hash") or "",
            "org": body.get("actor") or signer.get("org") or "",
            "org_name": event.get("actor_name") or names(body.get("actor")),
            "kid": kid,
            "sig": envelope.get("sig") or "",
            "index": event.get("log_index", event.get("seq")),
            "received": event.get("received") or "",
            "proof": None if not proof else {"size": proof.get("size"), "hashes": list(proof.get("hashes") or [])},
        })
    return rows


def keys_model(document: dict[str, Any], names: Names) -> list[dict[str, Any]]:
    rows = []
    for kid, key in sorted((document.get("keys") or {}).items()):
        rows.append({
            "kid": kid,
            "org": key.get("org") or "",
            "org_name": key.get("org_name") or names(key.get("org")),
            "public_key": key.get("public_key") or "",
            "valid_from": key.get("valid_from") or "",
            "revoked_from": key.get("revoked_from") or "",
        })
    return rows


def flags_model(t: Messages, document: dict[str, Any], lang: str | None, names: Names,
                timeline: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The warnings, each with its reason and evidence in the reader's language (api/flag_reasons.py); what that
    module does not understand is shown as the ledger wrote it (English, marked so). `timeline`: this tag's
    timeline rows by seq, so that an evidence item that is an event of this tag also says what that event was."""
    seqs = {event.get("seq") for event in document.get("events") or []}
    timeline = timeline or {}
    explainer = FlagExplainer(t, names, {e["seq"]: e for e in document.get("events") or []
                                         if isinstance(e, dict) and isinstance(e.get("seq"), int)})
    flags = []
    for flag in document.get("flags") or []:
        if not isinstance(flag, dict):
            continue
        code = str(flag.get("code") or "")
        summary = str(flag.get("summary") or "")
        text = explainer.explain(flag)
        evidence = []
        items = [item for item in flag.get("evidence") or [] if isinstance(item, dict)]
        for item, note in zip(items, text.notes):
            seq = item.get("seq")
            event = timeline.get(seq) if isinstance(seq, int) else None
            evidence.append({
                "seq": seq,
                # an entry of this tag's history links to its proofs below; another entry (e.g. a key revocation)
                # to the raw log entry; a refused attempt is not in the log
                "anchor": (f"#e{seq}" if seq in seqs else f"/v1/log/entries?start={seq}&end={seq + 1}")
                if isinstance(seq, int) else None,
                "label": t("flag_event", seq=seq) if seq is not None else t("flag_rejected"),
                "hash": str(item.get("hash") or ""),
                "note": note,
                # the ledger's English note, only when it could not be said in the reader's words
                "note_en": str(item.get("note") or "") if note is None and event is None else "",
                "event": event,
            })
        title = t.flag_title(code)
        sources = [str(x) for x in flag.get("from") or ([flag["tag"]] if flag.get("tag") else [])]
        inherited = bool(flag.get("inherited")) and bool(sources)
        flags.append({"code": code, "title": title or summary or code, "reason": text.reason,
                      "summary": summary if title and text.reason is None else "", "evidence": evidence,
                      "inherited": [{"tag": x, "href": tag_href(x, lang)} for x in sources[:MAX_LISTED]]
                      if inherited else []})
    return flags


def uncounted_attempts_model(t: Messages, document: dict[str, Any], names: Names) -> list[dict[str, Any]]:
    """Refused attempts by organisations without standing on this tag (protocol 9.1): kept and shown, apart from
    the warnings, because they prove nothing about the tag (anyone registered can send one)."""
    rows = []
    for attempt in document.get("refused_attempts") or []:
        if not isinstance(attempt, dict) or attempt.get("counted"):
            continue
        body = (attempt.get("envelope") or {}).get("body") or {}
        actor = str(body.get("actor") or "")
        received = str(attempt.get("received") or "")
        rows.append({"actor": names(actor) or actor, "event": t(f"event_{body.get('type')}"),
                     "date": received[:10], "time": received[11:16], "hash": str(attempt.get("hash") or "")})
    return rows


def _evidence_seqs(document: dict[str, Any]) -> set[int]:
    return {item.get("seq") for flag in document.get("flags") or [] if isinstance(flag, dict)
            for item in flag.get("evidence") or [] if isinstance(item, dict) and isinstance(item.get("seq"), int)}


def tag_page_model(document: dict[str, Any], *, registry: Any, t: Messages, lang_param: str | None,
                   label: dict[str, Any] | None, as_of: int | None, base_url: str) -> dict[str, Any]:
    tag = document.get("tag") or ""
    names = Names(registry, document)
    log = document.get("log") or None
    evidence = _evidence_seqs(document)
    json_href = "/v1/tags/" + quote(tag, safe="") + (f"?as_of={as_of}" if as_of is not None else "")
    timeline = [{**_event_row(t, e, tag, names, lang_param), "flagged": e.get("seq") in evidence}
                for e in document.get("events") or []]
    return {
        "tag": tag,
        "verdict": verdict_model(t, document, names, lang_param),
        "flags": flags_model(t, document, lang_param, names, {row["seq"]: row for row in timeline
                                                             if isinstance(row["seq"], int)}),
        "uncounted_attempts": uncounted_attempts_model(t, document, names),
        "origin": origins_model(t, document, names, lang_param),
        "risk": risk_model(t, document, names, as_of),
        "relations": relations_model(t, document, lang_param),
        "timeline": timeline,
        "proofs": proofs_model(document, names),
        "signing_keys": keys_model(document, names),
        "log": None if not log else {"note": log.get("checkpoint") or "", "size": log.get("size"),
                                     "root": log.get("root") or ""},
        "json_href": json_href,
        "audit_args": f"{base_url} --tag {tag}" + (f" --as-of {as_of}" if as_of is not None else ""),
        "label": label,
        "as_of": as_of,
        "current_href": tag_href(tag, lang_param),
    }


# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------


def render(template: str, *, t: Messages, languages: list[dict[str, str]], **context: Any) -> str:
    """`languages`: the other languages the page is offered in ({code, name, href}), linked from its header."""
    return TEMPLATES.get_template(template).render(t=t, lang=t.lang, languages=languages, **context)


def maybe_gzip(body: bytes, accept_encoding: str | None) -> tuple[bytes, bool]:
    """Compress for clients that accept gzip (every phone browser): hashes and markup shrink 3 to 5 times."""
    if len(body) < GZIP_MIN_BYTES or not accept_encoding or not _accepts_gzip(accept_encoding):
        return body, False
    return gzip.compress(body, compresslevel=6, mtime=0), True


def _accepts_gzip(header: str) -> bool:
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "x-gzip", "*"):
            q = params.strip().lower()
            if q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"):
                return False
            return True
    return False
