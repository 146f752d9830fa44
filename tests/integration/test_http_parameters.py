"""Hostile text in requests, over real HTTP, on SQLite and PostgreSQL: a 4xx problem+json, never a 5xx.

PostgreSQL refuses U+0000 in text: before issue 11, `GET /v1/tags?holder=%00` reached a query and was answered
503 "storage unavailable". Every GET operation of the published OpenAPI document is swept here, each of its
parameters in turn, with control characters (400 `request.invalid` naming the parameter, api/parameters.py) and
with other hostile values (never a server error). JSON bodies carry U+0000 only as the escape `\\u0000`: ids,
streams and keys refuse it by their patterns, and free text reaches the store only inside canonical bytes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from ledger.client import LedgerClient
from verification.encoding import format_time
from verification.envelope import sign_body
from verification.sealed_details import commitment, new_details

PROBLEM = "application/problem+json"
SITE, COOP, MONITOR = "kalimbi", "nyabibwe-coop", "monitor-ngo"
HELD, SPARE = "KAL-000001", "KAL-000002"
INCIDENT = "INC-0001"

# A real value for every path parameter of the API, so that a request reaches the store when one other
# parameter is hostile. A new path parameter must be added here (the sweep fails on an unknown one).
PATH_VALUES = {"tag_id": HELD, "refiner": SITE, "stream": f"tag:{HELD}", "org_id": SITE, "site_id": SITE, "incident_id": INCIDENT,
               "level": "0", "path": "000", "sha256": "ab" * 32}
# Control characters, percent-encoded: always 400 `request.invalid` naming the parameter.
CONTROL = ["%00", f"{HELD}%00", f"%00{HELD}", "a%0Ab", "%09", "%1F", "%7F"]
# Other hostile values: any answer but a server error; a refusal is problem+json.
HOSTILE = ["%FF%FE", "%ED%A0%80", "%C0%80", "%F0%9F%98%80", "%25", "'%20OR%201=1%20--", "%5C", "-1", "0",
           "9" * 30, "A" * 5000, "", "%20", "..%2F..%2Fetc%2Fpasswd", "tag:", "null"]


def assert_problem(response: httpx.Response, status: int | None = None) -> dict[str, Any]:
    where = f"GET {response.request.url}"[:300]
    assert 400 <= response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    if status is not None:
        assert response.status_code == status, f"{where}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].split(";")[0] == PROBLEM, (where, response.headers)
    problem = response.json()
    assert problem["status"] == response.status_code and problem["detail"], (where, problem)
    return problem


@pytest.fixture
def world(live_ledger):
    """A site with a tag attached and a spare one, a cooperative, a monitor, an incident at the site."""
    live = live_ledger
    site = live.register(SITE, "site")
    live.register(COOP, "cooperative")
    monitor = live.register(MONITOR, "monitor")
    live.operator.issue_tags(SITE, tags=[HELD, SPARE])
    site.attach(HELD, mineral="tin", mass_g=10_000, pit="P1")
    now = format_time(datetime.now(timezone.utc))
    monitor.report_incident(INCIDENT, site=SITE, category="health_safety", severity="low", occurred_at=now,
                            details_sha256=commitment(new_details("a loose ladder")))
    return live


def _get_operations(document: dict[str, Any]):
    for path, item in document["paths"].items():
        if "get" in item:
            yield path, item["get"].get("parameters", [])


def _url(path: str, parameters: list[dict[str, Any]], target: dict[str, Any], value: str) -> str:
    """`path` with every path parameter filled in (`target` gets `value`), and `?name=value` if `target` is a
    query parameter. Values are already percent-encoded: they are sent as they are."""
    for parameter in parameters:
        if parameter["in"] == "path":
            name = parameter["name"]
            assert name in PATH_VALUES, f"{path}: add a value for the path parameter {name!r} to PATH_VALUES"
            path = path.replace("{" + name + "}", value if parameter is target else PATH_VALUES[name])
    if target["in"] == "query":
        path += f"?{target['name']}={value}"
    return path


def _swept(world) -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    document = world.http.get("/openapi.json").json()
    cases = [(path, parameters, target) for path, parameters in _get_operations(document)
             for target in parameters if target["in"] in ("path", "query")]
    swept = {(path, target["name"]) for path, _, target in cases}
    # the routes of the report, and enough of the rest that the sweep cannot have silently emptied
    assert {("/v1/tags", "holder"), ("/v1/tags", "after"), ("/v1/tags/{tag_id}", "tag_id"),
            ("/v1/streams/{stream}/head", "stream"), ("/v1/epcis/events", "MATCH_anyEPC"),
            ("/v1/log/entries", "start"), ("/v1/sites/{site_id}/risk", "as_of")} <= swept
    assert len(swept) >= 30, sorted(swept)
    return cases


def test_control_characters_in_any_parameter_are_400_naming_it(world) -> None:
    before = world.entries()
    for path, parameters, target in _swept(world):
        for value in CONTROL:
            if target["name"] == "path" and path.startswith("/tiles/") and "%0A" in value:
                # a newline ends a catch-all tile path: no route matches at all, which is 404 problem+json
                assert_problem(world.http.get(_url(path, parameters, target, value)), 404)
                continue
            problem = assert_problem(world.http.get(_url(path, parameters, target, value)), 400)
            assert problem["rule"] == "request.invalid", problem
            assert problem["field"] == "/" + target["name"], problem
            assert "control character" in problem["detail"], problem
    assert world.entries() == before


def test_the_reported_requests(world) -> None:
    for query, field in (("holder=%00", "/holder"), (f"holder={SITE}%00", "/holder"),
                         (f"after={HELD}%00", "/after"), ("status=issued&after=%00", "/after")):
        problem = assert_problem(world.http.get(f"/v1/tags?{query}"), 400)
        assert (problem["rule"], problem["field"]) == ("request.invalid", field)
    # the same lists still work
    listed = world.http.get("/v1/tags", params={"holder": SITE})
    assert listed.status_code == 200
    # a name with a control character is refused too (no parameter is named so)
    assert assert_problem(world.http.get("/v1/tags?a%00=1"), 400)["rule"] == "request.invalid"
    # writes read no query parameter, but carry the same check
    assert assert_problem(world.http.post("/v1/events?x=%00", content=b"{}",
                                          headers={"content-type": "application/json"}), 400)["field"] == "/x"


def test_other_hostile_values_are_never_a_server_error(world) -> None:
    answered = 0
    for path, parameters, target in _swept(world):
        for value in HOSTILE:
            response = world.http.get(_url(path, parameters, target, value))
            where = f"GET {response.request.url}"[:300]
            assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
            if response.status_code >= 400:
                assert_problem(response)
            answered += 1
    assert answered >= 30 * len(HOSTILE)


def _string_paths(value: Any, pointer: tuple[Any, ...] = ()):
    """Every (pointer, string) in a JSON value, keys of objects included as ('key', name)."""
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _string_paths(item, (*pointer, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _string_paths(item, (*pointer, i))


def _replaced(document: Any, pointer: tuple[Any, ...], new: str) -> Any:
    if not pointer:
        return new
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[pointer[0]] = _replaced(document[pointer[0]], pointer[1:], new)
    return copy


def test_nul_in_every_string_of_an_envelope(world) -> None:
    """Each string of a signed dispatch in turn gets a U+0000 (re-signed, so the signature is not what fails):
    ids, streams, keys and times refuse it (422 `envelope.malformed`); free text is accepted, since JCS
    escapes it and entries are stored as bytes, and reads back intact."""
    site: LedgerClient = world.orgs[SITE].client
    prev = world.head(f"tag:{HELD}")
    envelope = site.signer.envelope("custody_dispatched", f"tag:{HELD}", prev,
                                    {"to": COOP, "location": "Kalimbi depot"})
    keys = world.orgs[SITE].keys
    accepted = []
    for pointer, text in _string_paths(envelope["body"]):
        body = _replaced(envelope["body"], pointer, text[:3] + "\u0000" + text[3:])
        candidate = sign_body(keys.private_key, body, check=False).to_json()
        before = world.entries()
        response = world.http.post("/v1/events", json=candidate)
        assert response.status_code < 500, (pointer, response.status_code, response.text[:300])
        if response.status_code in (200, 201):
            accepted.append(pointer)
            continue
        assert_problem(response)
        assert world.entries() == before, f"{pointer}: a refused envelope changed the log"
    # the signature itself
    assert_problem(world.http.post("/v1/events", json={**envelope, "sig": envelope["sig"][:85] + "\u0000"}), 422)
    # free text only; an id, stream, key, hash or time never
    assert accepted == [("data", "location")], accepted
    view = world.http.get(f"/v1/tags/{HELD}")
    assert view.status_code == 200
    assert view.json()["events"][-1]["envelope"]["body"]["data"]["location"] == "Kal\u0000imbi depot"


def test_nul_in_uploads(world) -> None:
    # a label's tag id: refused by its pattern, nothing stored
    label = {"tag": f"{SPARE}\u0000", "kid": "0" * 16, "sig": "A" * 86}
    problem = assert_problem(world.http.post("/v1/labels", json={"labels": [label]}), 422)
    assert problem["field"] == "/labels/0/tag"
    # sealed details are free text, kept as their canonical bytes: a U+0000 in them is stored and served intact
    monitor: LedgerClient = world.orgs[MONITOR].client
    details = new_details("a child\u0000at pit 3")
    now = format_time(datetime.now(timezone.utc))
    monitor.report_incident("INC-0002", site=SITE, category="child_labour", severity="high", occurred_at=now,
                            details_sha256=commitment(details))
    stored = world.http.put("/v1/incidents/INC-0002/details", json=details)
    assert stored.status_code == 200, stored.text
    assert stored.json()["details_sha256"] == commitment(details)
    assert world.ledger.sealed_details("INC-0002") == details
