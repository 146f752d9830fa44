"""Bad input over real HTTP, on both backends: always a 4xx RFC 9457 problem, never a 500, nothing written.

Every case checks the status, `application/problem+json`, the members `type`, `title`, `status`, `detail`
(and `rule` / `field` where the protocol names them), and that `/healthz` counts the same entries before and
after. Then: concurrent conflicting writes (exactly one wins, the loser gets the winner's head), idempotent
resubmission, and the batch endpoint's per-item answers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from ledger.client import LedgerClient, Signer
from ledger.keys import KeyPair
from verification.encoding import b64url_encode, format_time, parse_time
from verification.envelope import Envelope, envelope_hash, sign_body

PROBLEM = "application/problem+json"
TYPE_BASE = "https://tagledger.org/problems/"

SITE, OTHER_SITE, COOP, TRADER, REFINER, AUDITOR = (
    "kalimbi-site", "lemera-site", "nyabibwe-coop", "bukavu-trader", "thaisarco", "itsci-audit",
)
HELD = "KAL-000001"  # attached, held by the site (10 kg)
IN_TRANSIT = "KAL-000002"  # attached, dispatched by the site to the coop (10 kg)
UNATTACHED = "KAL-000003"  # issued to the site, not on a bag
CONSUMED = "KAL-000004"  # went all the way to the refiner and was consumed
FREE = [f"KAL-{i:06d}" for i in range(5, 11)]  # issued to the site, unused: for tests that write


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def assert_problem(response: httpx.Response, status: int, rule: str | None = None,
                   field: str | None = None) -> dict[str, Any]:
    """`response` is the RFC 9457 problem `status` (and `rule` / `field` when given)."""
    where = f"{response.request.method} {response.request.url.path}"
    assert response.status_code == status, f"{where}: {response.status_code} {response.text[:500]}"
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM, (where, response.headers)
    problem = response.json()
    for member in ("type", "title", "status", "detail"):
        assert member in problem, f"{where}: problem lacks {member}: {problem}"
        assert problem[member] not in (None, ""), f"{where}: empty {member}: {problem}"
    assert problem["status"] == status
    assert isinstance(problem["title"], str) and isinstance(problem["detail"], str)
    if problem.get("rule") is not None:
        assert problem["type"] == TYPE_BASE + problem["rule"]
    if rule is not None:
        assert problem.get("rule") == rule, f"{where}: expected {rule}, got {problem}"
    if field is not None:
        assert problem.get("field") == field, f"{where}: expected field {field}, got {problem}"
    return problem


def to_bytes(envelope: Any) -> bytes:
    return json.dumps(envelope).encode()


@dataclass
class World:
    """A small ledger: six organisations and tags in every state (see the constants above)."""

    live: Any
    clients: dict[str, LedgerClient]

    @property
    def http(self) -> httpx.Client:
        return self.live.http

    def keys(self, org: str) -> KeyPair:
        return self.live.orgs[org].keys

    def sign(self, org: str, event_type: str, stream: str, data: dict[str, Any], *, prev: Any = "head",
             keys: KeyPair | None = None, **kwargs: Any) -> dict[str, Any]:
        """An envelope signed by `org` (with `keys`, default its registered key) on `stream`'s current head."""
        if prev == "head":
            prev = self.live.head(stream)
        if keys is None:
            keys = self.live.root if org == "itsci" else self.keys(org)
        return Signer(org, keys).envelope(event_type, stream, prev, data, **kwargs)

    def post(self, envelope: Any, **kwargs: Any) -> httpx.Response:
        return self.http.post("/v1/events", content=to_bytes(envelope),
                              headers={"content-type": "application/json"}, **kwargs)

    def refused(self, response_of: Callable[[], httpx.Response], status: int, rule: str | None = None,
                field: str | None = None) -> dict[str, Any]:
        """Send a bad request; it is refused with the problem and nothing is written."""
        before = self.live.entries()
        problem = assert_problem(response_of(), status, rule, field)
        assert self.live.entries() == before, f"a refused request ({rule}) changed the log"
        return problem


@pytest.fixture
def world(live_ledger) -> World:
    live = live_ledger
    site = live.register(SITE, "site", name="Kalimbi")
    other = live.register(OTHER_SITE, "site", name="Lemera")
    coop = live.register(COOP, "cooperative")
    trader = live.register(TRADER, "trader")
    refiner = live.register(REFINER, "refiner", rmi_cid="CID001898")
    live.register(AUDITOR, "auditor")
    live.operator.issue_tags(SITE, prefix="KAL-", start=1, count=10, width=6)
    live.operator.issue_tags(OTHER_SITE, tags=["LEM-000001"])

    site.attach(HELD, mineral="tin", mass_g=10_000, pit="P1")
    site.attach(IN_TRANSIT, mineral="tin", mass_g=10_000, pit="P1")
    site.dispatch(IN_TRANSIT, COOP, mass_g=10_000)
    site.attach(CONSUMED, mineral="tin", mass_g=5_000, pit="P2")
    site.dispatch(CONSUMED, REFINER)
    refiner.receive(CONSUMED, mass_g=5_000)
    refiner.consume(CONSUMED, product="ingot")
    clients = {SITE: site, OTHER_SITE: other, COOP: coop, TRADER: trader, REFINER: refiner}
    return World(live, clients)


# ------------------------------------------------------------------------------------------------
# The request itself: JSON, media type, size
# ------------------------------------------------------------------------------------------------


def test_bodies_that_are_not_protocol_json(world: World) -> None:
    good = to_bytes(world.sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": COOP, "mass_g": 10_000}))
    assert b'"mass_g": 10000' in good
    cases = {
        "invalid JSON": b'{"body": {',
        "trailing garbage": good + b" x",
        "empty body": b"",
        "a float": good.replace(b'"mass_g": 10000', b'"mass_g": 10000.0'),
        "an exponent": good.replace(b'"mass_g": 10000', b'"mass_g": 1e4'),
        "negative zero": good.replace(b'"mass_g": 10000', b'"mass_g": -0.0'),
        "NaN": good.replace(b'"mass_g": 10000', b'"mass_g": NaN'),
        "an integer beyond 2^53": good.replace(b'"mass_g": 10000', b'"mass_g": 9007199254740993'),
        "duplicate keys": b'{"sig": "x", ' + good[1:],
        "duplicate keys in data": good.replace(b'"mass_g": 10000', b'"mass_g": 10000, "mass_g": 1'),
        "not UTF-8": good.replace(b'"to": "', b'"to": "\xff'),
        "a byte order mark": b"\xef\xbb\xbf" + good,
        "a lone surrogate": good.replace(b'"to": "', b'"to": "\\ud800'),
    }
    for name, content in cases.items():
        problem = world.refused(
            lambda: world.http.post("/v1/events", content=content, headers={"content-type": "application/json"}),
            400, "request.malformed_json")
        assert problem["detail"], name


def test_json_that_is_not_an_object(world: World) -> None:
    for content in (b"[]", b'[{"body": {}, "sig": ""}]', b'"an envelope"', b"42", b"null", b"true"):
        world.refused(lambda: world.http.post("/v1/events", content=content,
                                              headers={"content-type": "application/json"}),
                      422, "envelope.malformed")


def test_wrong_media_type_is_415(world: World) -> None:
    good = to_bytes(world.sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": COOP}))
    for media in ("text/plain", "application/x-www-form-urlencoded", "application/xml", "multipart/form-data"):
        for path in ("/v1/events", "/v1/events/batch"):
            world.refused(lambda: world.http.post(path, content=good, headers={"content-type": media}),
                          415, "request.media_type")
    # parameters and +json media types are fine
    response = world.http.post("/v1/events", content=good, headers={"content-type": "application/json; charset=utf-8"})
    assert response.status_code == 201, response.text


def test_body_over_one_mebibyte_is_413(world: World) -> None:
    envelope = world.sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": COOP, "location": "x"})
    envelope["body"]["data"]["location"] = "x" * (1 << 20)  # over the limit on its own
    big = to_bytes(envelope)
    assert len(big) > 1 << 20
    # declared with Content-Length
    world.refused(lambda: world.http.post("/v1/events", content=big, headers={"content-type": "application/json"}),
                  413, "request.too_large")

    # streamed without a length (chunked): the server counts as it reads
    def chunks():
        for start in range(0, len(big), 64 * 1024):
            yield big[start:start + 64 * 1024]

    def chunked() -> httpx.Response:
        request = world.http.build_request("POST", "/v1/events", content=chunks(),
                                           headers={"content-type": "application/json"})
        assert "content-length" not in request.headers
        return world.http.send(request)

    world.refused(chunked, 413, "request.too_large")
    # just under the limit is read and judged on its merits (a location is at most 120 characters)
    envelope["body"]["data"]["location"] = "x" * ((1 << 20) - 2000)
    assert len(to_bytes(envelope)) < 1 << 20
    world.refused(lambda: world.post(envelope), 422, "envelope.malformed", "/body/data/location")


# ------------------------------------------------------------------------------------------------
# The envelope's structure
# ------------------------------------------------------------------------------------------------


def test_missing_and_extra_fields(world: World) -> None:
    def mutated(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        envelope = world.sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": COOP, "mass_g": 10_000})
        change(envelope)
        return envelope

    cases: list[tuple[Callable[[dict[str, Any]], None], str]] = [
        (lambda e: e.pop("sig"), "/sig"),
        (lambda e: e.pop("body"), "/body"),
        (lambda e: e.update(extra=1), "/extra"),
        (lambda e: e["body"].pop("time"), "/body/time"),
        (lambda e: e["body"].pop("prev"), "/body/prev"),
        (lambda e: e["body"].pop("data"), "/body/data"),
        (lambda e: e["body"].update(colour="red"), "/body/colour"),
        (lambda e: e["body"]["data"].update(colour="red"), "/body/data/colour"),
        (lambda e: e["body"]["data"].pop("to"), "/body/data/to"),
        (lambda e: e["body"].update(v=2), "/body/v"),
        (lambda e: e["body"].update(id="not-a-uuid"), "/body/id"),
        (lambda e: e["body"].update(id=e["body"]["id"].upper()), "/body/id"),
        (lambda e: e["body"].update(type="tag_stolen"), "/body/type"),
        (lambda e: e["body"].update(stream="tag:lower-case"), "/body/stream"),
        (lambda e: e["body"].update(prev="ABC"), "/body/prev"),
        (lambda e: e["body"].update(time="2026-02-30T10:00:00Z"), "/body/time"),
        (lambda e: e["body"].update(time="2026-01-01T10:00:00+01:00"), "/body/time"),
        (lambda e: e["body"].update(key="XYZ"), "/body/key"),
        (lambda e: e["body"].update(actor="Not An Org"), "/body/actor"),
        (lambda e: e["body"]["data"].update(mass_g=True), "/body/data/mass_g"),
        (lambda e: e["body"]["data"].update(mass_g="10000"), "/body/data/mass_g"),
        (lambda e: e["body"]["data"].update(mass_g=0), "/body/data/mass_g"),
        (lambda e: e.update(sig="too-short"), "/sig"),
        (lambda e: e.update(body=[]), "/body"),
    ]
    for change, field in cases:
        envelope = mutated(change)
        world.refused(lambda: world.post(envelope), 422, "envelope.malformed", field)


# ------------------------------------------------------------------------------------------------
# Keys, signatures, actors, roles
# ------------------------------------------------------------------------------------------------


def test_signature_key_actor_and_role(world: World) -> None:
    stream = f"tag:{HELD}"
    data = {"to": COOP, "mass_g": 10_000}

    # the body was changed after signing
    envelope = world.sign(SITE, "custody_dispatched", stream, data)
    envelope["body"]["data"]["to"] = TRADER
    world.refused(lambda: world.post(envelope), 422, "signature.invalid", "/sig")

    # signed by another private key while naming the site's key
    body = dict(world.sign(SITE, "custody_dispatched", stream, data)["body"])
    forged = sign_body(KeyPair.generate().private_key, body, check=False)
    world.refused(lambda: world.post({"body": forged.body, "sig": forged.sig}), 422, "signature.invalid", "/sig")

    # a signature by a real key of another organisation, over this body
    forged = sign_body(world.keys(COOP).private_key, body, check=False)
    world.refused(lambda: world.post({"body": forged.body, "sig": forged.sig}), 422, "signature.invalid", "/sig")

    # a key nobody registered
    stranger = world.sign(SITE, "custody_dispatched", stream, data, keys=KeyPair.generate())
    world.refused(lambda: world.post(stranger), 422, "key.unknown", "/body/key")

    # the coop's own key, claiming to be the site
    world.refused(lambda: world.post(world.sign(SITE, "custody_dispatched", stream, data, keys=world.keys(COOP))),
                  422, "key.unknown", "/body/key")

    # an organisation that does not exist
    ghost = world.sign("ghost-org", "custody_dispatched", stream, data, keys=KeyPair.generate())
    world.refused(lambda: world.post(ghost), 422, "actor.unknown", "/body/actor")

    # roles: a site cannot consume, issue tags or register organisations; an auditor cannot move custody
    world.refused(lambda: world.post(world.sign(SITE, "tag_consumed", stream, {})), 422, "actor.role", "/body/actor")
    world.refused(lambda: world.post(world.sign(SITE, "tags_issued", f"org:{SITE}", {"tags": ["SELF-001"]})),
                  422, "actor.role", "/body/actor")
    world.refused(lambda: world.post(world.sign(AUDITOR, "custody_dispatched", stream, data)),
                  422, "actor.role", "/body/actor")

    # a revoked key
    old = world.keys(OTHER_SITE)
    world.live.operator.revoke_key(OTHER_SITE, old.kid, "laptop stolen")
    world.refused(lambda: world.post(world.sign(OTHER_SITE, "tag_attached", "tag:LEM-000001",
                                                {"site": OTHER_SITE, "mineral": "tin", "mass_g": 1, "pit": "P"})),
                  422, "key.revoked", "/body/key")


def test_weak_keys_are_never_registered(world: World) -> None:
    """key.weak (protocol 1.14): 422 problem+json naming the key, and the log does not grow."""
    weak = {
        "identity": "01" + "00" * 31,
        "order 8": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "mixed order": "b502ff3d92e31d8190b4aa4ea0414005167fad089c4de9dac8a2fc850fed4f58",
        "y = p": "ed" + "ff" * 30 + "7f",
        "not a point": "02" + "00" * 31,
    }
    for name, hex_key in weak.items():
        key = b64url_encode(bytes.fromhex(hex_key))
        registration = {"name": "Newcomer", "role": "site", "country": "CD",
                        "public_keys": [KeyPair.generate().public_key, key]}
        problem = world.refused(lambda: world.post(world.sign("itsci", "org_registered", "org:newcomer",
                                                              registration)),
                                422, "key.weak", "/body/data/public_keys/1")
        assert "prime order" in problem["detail"], name
        world.refused(lambda: world.post(world.sign("itsci", "key_added", f"org:{SITE}", {"public_key": key})),
                      422, "key.weak", "/body/data/public_key")
    assert world.http.get("/v1/orgs/newcomer").status_code == 404
    # an ordinary key still goes in
    before = world.live.entries()
    response = world.post(world.sign("itsci", "key_added", f"org:{SITE}", {"public_key": KeyPair.generate().public_key}))
    assert response.status_code == 201, response.text
    assert world.live.entries() == before + 1


# ------------------------------------------------------------------------------------------------
# Custody rules
# ------------------------------------------------------------------------------------------------


def test_custody_rules(world: World) -> None:
    post, refused, sign = world.post, world.refused, world.sign

    # not the holder: the coop dispatches the site's bag
    refused(lambda: post(sign(COOP, "custody_dispatched", f"tag:{HELD}", {"to": TRADER})),
            422, "custody.not_holder", "/body/actor")
    # not the holder: the coop voids it
    refused(lambda: post(sign(COOP, "tag_voided", f"tag:{HELD}", {"reason": "lost"})),
            422, "custody.not_holder", "/body/actor")
    # invalid recipients: itself, an auditor, nobody
    for to in (SITE, AUDITOR, "ghost-org"):
        refused(lambda: post(sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": to})),
                422, "recipient.invalid", "/body/data/to")
    # the wrong recipient receives
    refused(lambda: post(sign(TRADER, "custody_received", f"tag:{IN_TRANSIT}", {"mass_g": 10_000})),
            422, "custody.not_recipient", "/body/actor")
    # receive of a bag that was not dispatched
    refused(lambda: post(sign(COOP, "custody_received", f"tag:{HELD}", {"mass_g": 10_000})),
            422, "custody.not_in_transit", "/body/stream")
    # dispatch of a bag in transit
    refused(lambda: post(sign(SITE, "custody_dispatched", f"tag:{IN_TRANSIT}", {"to": TRADER})),
            422, "custody.in_transit", "/body/stream")
    # custody of a tag not on a bag
    refused(lambda: post(sign(SITE, "custody_dispatched", f"tag:{UNATTACHED}", {"to": COOP})),
            422, "tag.not_attached", "/body/stream")
    # another site attaches the site's tag
    attach = {"site": OTHER_SITE, "mineral": "tin", "mass_g": 1_000, "pit": "P9"}
    refused(lambda: post(sign(OTHER_SITE, "tag_attached", f"tag:{UNATTACHED}", attach)),
            422, "tag.not_issued_to_actor", "/body/actor")
    # ... or claims the tag for itself while signing as the right site
    refused(lambda: post(sign(SITE, "tag_attached", f"tag:{UNATTACHED}", attach)),
            422, "tag.not_issued_to_actor", "/body/data/site")
    # attach twice
    refused(lambda: post(sign(SITE, "tag_attached", f"tag:{HELD}", {**attach, "site": SITE})),
            422, "tag.already_attached", "/body/stream")
    # anything after consumption
    for event_type, data in [("tag_consumed", {}), ("custody_dispatched", {"to": TRADER}),
                             ("tag_voided", {"reason": "lost"})]:
        refused(lambda: post(sign(REFINER, event_type, f"tag:{CONSUMED}", data)), 422, "tag.finished")
    # a tag that was never issued
    refused(lambda: post(sign(SITE, "custody_dispatched", "tag:NOPE-000001", {"to": COOP}, prev=None)),
            422, "stream.unknown", "/body/stream")
    # time rules
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    refused(lambda: post(sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": COOP}, time=future)),
            422, "time.in_future", "/body/time")
    # just before the bag's last event (and after the site's key was added, or the key would not be valid yet)
    last = parse_time(world.http.get(f"/v1/streams/tag:{HELD}/head").json()["time"])
    earlier = format_time(last - timedelta(microseconds=1))
    refused(lambda: post(sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": COOP}, time=earlier)),
            422, "time.before_previous", "/body/time")
    # long before anything: the key was not valid yet
    refused(lambda: post(sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": COOP}, time="2020-01-01T00:00:00Z")),
            422, "key.not_yet_valid", "/body/key")


def test_mass_gain_beyond_tolerance(world: World) -> None:
    """The tolerance is 20,000 ppm (2 %): 10,200 g out of 10,000 g passes, 10,201 g does not."""
    too_much = world.sign(COOP, "custody_received", f"tag:{IN_TRANSIT}", {"mass_g": 10_201})
    world.refused(lambda: world.post(too_much), 422, "mass.gain", "/body/data/mass_g")
    world.refused(lambda: world.post(world.sign(SITE, "custody_dispatched", f"tag:{HELD}",
                                                {"to": COOP, "mass_g": 12_000})),
                  422, "mass.gain", "/body/data/mass_g")
    assert world.post(world.sign(COOP, "custody_received", f"tag:{IN_TRANSIT}", {"mass_g": 10_200})).status_code == 201


def test_mass_balance_of_a_lot(world: World) -> None:
    site = world.clients[SITE]
    site.attach(FREE[0], mineral="tin", mass_g=1_000, pit="P1")
    links = {f"tag:{HELD}": world.live.head(f"tag:{HELD}"), f"tag:{FREE[0]}": world.live.head(f"tag:{FREE[0]}")}
    lot = world.sign(SITE, "lot_formed", f"tag:{FREE[1]}", {"inputs": [HELD, FREE[0]], "mass_g": 12_000},
                     links=links)
    world.refused(lambda: world.post(lot), 422, "mass.balance", "/body/data/mass_g")


# ------------------------------------------------------------------------------------------------
# Reading: tags, heads, organisations, methods
# ------------------------------------------------------------------------------------------------


def test_reads_that_fail(world: World) -> None:
    http, refused = world.http, world.refused
    for bad in ("ab", "A", "BAD_TAG", "KAL%20000001", "%C3%84BC", "-ABC", "X" * 41):
        refused(lambda: http.get(f"/v1/tags/{bad}"), 400, "tag.invalid_id", "/tag_id")

    problem = refused(lambda: http.get("/v1/tags/NOPE-000001"), 404, "tag.unknown")
    assert problem["verdict"]["code"] == "unknown"
    assert problem["verdict"]["authentic"] is False

    refused(lambda: http.get("/v1/streams/tag:NOPE-000001/head"), 404, "stream.unknown")
    refused(lambda: http.get("/v1/streams/org:ghost-org/head"), 404, "stream.unknown")
    refused(lambda: http.get("/v1/streams/bogus/head"), 400, "stream.invalid")
    refused(lambda: http.get("/v1/streams/tag:lower/head"), 400, "stream.invalid")
    refused(lambda: http.get("/v1/orgs/ghost-org"), 404, "org.unknown")
    refused(lambda: http.get("/v1/no-such-thing"), 404, "not_found")
    refused(lambda: http.get("/v1/tags", params={"status": "stolen"}), 400, "request.invalid", "/status")
    refused(lambda: http.get("/v1/tags", params={"limit": "0"}), 400, "request.invalid")
    refused(lambda: http.get("/v1/tags", params={"limit": "ten"}), 400, "request.invalid")

    # and the reads that work, for contrast
    assert http.get(f"/v1/tags/{HELD}").status_code == 200
    assert http.get(f"/v1/streams/tag:{HELD}/head").json()["hash"] == world.live.head(f"tag:{HELD}")
    assert http.get(f"/v1/orgs/{SITE}").json()["keys"][0]["kid"] == world.keys(SITE).kid


def test_wrong_method_is_405(world: World) -> None:
    for method, path in [("GET", "/v1/events"), ("PUT", "/v1/events"), ("DELETE", "/v1/events"),
                         ("GET", "/v1/events/batch"), ("DELETE", f"/v1/tags/{HELD}"), ("POST", f"/v1/tags/{HELD}"),
                         ("PATCH", f"/v1/orgs/{SITE}"), ("POST", "/v1/streams/ledger/head")]:
        world.refused(lambda: world.http.request(method, path, content=b"{}",
                                                 headers={"content-type": "application/json"}),
                      405, "method_not_allowed")


def test_405_names_the_allowed_methods(world: World) -> None:
    response = world.http.get("/v1/events")
    assert response.status_code == 405
    assert "POST" in response.headers.get("allow", "")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the JSON parser is the same for both
def test_deeply_nested_json_with_a_lone_surrogate_is_a_400(live_ledger) -> None:
    """The C decoder stops at the recursion limit; the lone-surrogate scan must not overflow just below it."""
    answers: dict[str, Any] = {}
    http = live_ledger.new_http()
    for depth in range(900, 1001):  # Python's default recursion limit is 1000
        nested = b"[" * depth + b'"\\ud800"' + b"]" * depth
        for path, content in (("/v1/events", b'{"body":' + nested + b',"sig":"x"}'), ("/v1/events/batch", nested)):
            try:
                response = http.post(path, content=content, headers={"content-type": "application/json"})
            except httpx.TransportError as error:
                answers[f"{path} depth {depth}"] = type(error).__name__
                http = live_ledger.new_http()  # the connection was reset
                continue
            if response.status_code != 400:
                answers[f"{path} depth {depth}"] = response.status_code
    assert answers == {}, f"not a 400: {answers}"


# ------------------------------------------------------------------------------------------------
# Conflicts, retries, idempotency
# ------------------------------------------------------------------------------------------------


def _concurrently(world: World, envelopes: list[dict[str, Any]]) -> list[httpx.Response]:
    """POST the envelopes at the same moment, each from its own thread and connection."""
    barrier = threading.Barrier(len(envelopes))
    responses: list[httpx.Response | BaseException | None] = [None] * len(envelopes)
    clients = [world.live.new_http() for _ in envelopes]

    def send(i: int) -> None:
        content = to_bytes(envelopes[i])
        try:
            barrier.wait(timeout=10)
            responses[i] = clients[i].post("/v1/events", content=content,
                                           headers={"content-type": "application/json"})
        except BaseException as error:  # noqa: BLE001 - reported below
            responses[i] = error

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(envelopes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for response in responses:
        assert isinstance(response, httpx.Response), response
    return responses  # type: ignore[return-value]


def test_concurrent_conflicting_dispatches(world: World) -> None:
    stream = f"tag:{HELD}"
    head = world.live.head(stream)
    to_coop = world.sign(SITE, "custody_dispatched", stream, {"to": COOP}, prev=head)
    to_trader = world.sign(SITE, "custody_dispatched", stream, {"to": TRADER}, prev=head)
    before = world.live.entries()

    responses = _concurrently(world, [to_coop, to_trader])

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409], [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 201)
    loser = next(r for r in responses if r.status_code == 409)
    problem = assert_problem(loser, 409, "stream.conflict", "/body/prev")
    assert problem["stream"] == stream
    assert problem["expected"] == head
    assert problem["head"]["hash"] == winner.json()["hash"]
    assert problem["head"]["seq"] == winner.json()["seq"]
    assert world.live.entries() == before + 1
    assert world.live.head(stream) == winner.json()["hash"]

    # the loser signs again on the head the 409 named: no longer a conflict, judged on the merits
    lost = to_coop if loser is responses[0] else to_trader
    retry = world.sign(SITE, "custody_dispatched", stream, lost["body"]["data"], prev=problem["head"]["hash"])
    world.refused(lambda: world.post(retry), 422, "custody.in_transit", "/body/stream")
    won_to = (to_coop if winner is responses[0] else to_trader)["body"]["data"]["to"]
    assert world.http.get(f"/v1/tags/{HELD}").json()["state"]["pending_recipient"] == won_to


def test_concurrent_conflict_then_retry_with_the_new_head(world: World) -> None:
    stream = f"org:{SITE}"
    head = world.live.head(stream)
    first = world.sign("itsci", "tags_issued", stream, {"tags": ["NEW-000001"]}, prev=head)
    second = world.sign("itsci", "tags_issued", stream, {"tags": ["NEW-000002"]}, prev=head)

    responses = _concurrently(world, [first, second])

    assert sorted(r.status_code for r in responses) == [201, 409]
    winner = next(r for r in responses if r.status_code == 201)
    loser_index = next(i for i, r in enumerate(responses) if r.status_code == 409)
    problem = assert_problem(responses[loser_index], 409, "stream.conflict", "/body/prev")
    assert problem["head"]["hash"] == winner.json()["hash"]

    lost = [first, second][loser_index]
    retry = world.sign("itsci", "tags_issued", stream, lost["body"]["data"], prev=problem["head"]["hash"])
    response = world.post(retry)
    assert response.status_code == 201, response.text
    for tag in ("NEW-000001", "NEW-000002"):
        assert world.http.get(f"/v1/tags/{tag}").json()["verdict"]["code"] == "issued"


def test_ledger_client_retries_conflicts_by_itself(world: World) -> None:
    """Four clients of the operator issue tags to the same organisation at once: all get through."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def issue(i: int) -> None:
        client = world.live.client_for("itsci", world.live.root, retries=20)
        try:
            barrier.wait(timeout=10)
            client.issue_tags(SITE, tags=[f"RACE-{i:03d}"])
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=issue, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    for i in range(4):
        assert world.http.get(f"/v1/tags/RACE-{i:03d}").json()["state"]["issued_to"] == SITE


def test_stale_prev_and_links_are_409_with_the_head(world: World) -> None:
    """Not concurrent, just stale: `prev` or a `links` value that is not the stream's head."""
    stream = f"tag:{HELD}"
    head = world.live.head(stream)
    head_seq = world.http.get(f"/v1/streams/{stream}/head").json()["seq"]
    for prev in (None, "0" * 64):
        problem = world.refused(lambda: world.post(world.sign(SITE, "custody_dispatched", stream, {"to": COOP},
                                                              prev=prev)),
                                409, "stream.conflict", "/body/prev")
        assert problem["stream"] == stream and problem["expected"] == prev
        assert problem["head"] == {"hash": head, "seq": head_seq}
    lot = world.sign(SITE, "lot_formed", f"tag:{FREE[1]}", {"inputs": [HELD], "mass_g": 10_000},
                     links={stream: "1" * 64})
    problem = world.refused(lambda: world.post(lot), 409, "stream.conflict", f"/body/links/{stream}")
    assert problem["stream"] == stream and problem["head"]["hash"] == head


def test_concurrent_identical_submissions(world: World) -> None:
    """The same envelope sent twice at once (a client retrying on a timeout): recorded once."""
    envelope = world.sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": COOP})
    before = world.live.entries()
    responses = _concurrently(world, [envelope, envelope])
    assert sorted(r.status_code for r in responses) == [200, 201], [r.text for r in responses]
    first, second = sorted(responses, key=lambda r: r.status_code, reverse=True)
    assert second.json() == {**first.json(), "duplicate": True}
    assert world.live.entries() == before + 1


def test_idempotent_resubmission(world: World) -> None:
    envelope = world.sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": COOP, "mass_g": 10_000})
    first = world.post(envelope)
    assert first.status_code == 201, first.text
    assert first.headers["content-type"].startswith("application/json")
    receipt = first.json()
    assert receipt["duplicate"] is False
    assert receipt["event_id"] == envelope["body"]["id"]
    assert receipt["hash"] == envelope_hash(Envelope.from_json(envelope))
    entries = world.live.entries()

    second = world.post(envelope)
    assert second.status_code == 200, second.text
    assert second.json() == {**receipt, "duplicate": True}
    assert world.live.entries() == entries

    # still the original answer after the stream has moved on (not a conflict)
    world.clients[COOP].receive(HELD, mass_g=10_000)
    third = world.post(envelope)
    assert third.status_code == 200 and third.json() == {**receipt, "duplicate": True}

    # whitespace and member order do not matter: the envelope is the same
    reordered = json.dumps({"sig": envelope["sig"], "body": envelope["body"]}, indent=3).encode()
    fourth = world.http.post("/v1/events", content=reordered, headers={"content-type": "application/json"})
    assert fourth.status_code == 200 and fourth.json() == {**receipt, "duplicate": True}


def test_same_event_id_with_other_content_is_409(world: World) -> None:
    envelope = world.sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": COOP})
    receipt = world.post(envelope).json()
    other = world.sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": TRADER}, prev=envelope["body"]["prev"],
                       event_id=envelope["body"]["id"])
    problem = world.refused(lambda: world.post(other), 409, "event.duplicate_id", "/body/id")
    assert problem["seq"] == receipt["seq"] and problem["hash"] == receipt["hash"]
    # an event id is unique in the whole ledger, not per stream
    elsewhere = world.sign(SITE, "tag_attached", f"tag:{FREE[0]}",
                           {"site": SITE, "mineral": "tin", "mass_g": 1, "pit": "P"}, event_id=envelope["body"]["id"])
    world.refused(lambda: world.post(elsewhere), 409, "event.duplicate_id", "/body/id")


# ------------------------------------------------------------------------------------------------
# The batch endpoint
# ------------------------------------------------------------------------------------------------


def test_batch_answers_each_envelope(world: World) -> None:
    tag = FREE[2]
    attach = world.sign(SITE, "tag_attached", f"tag:{tag}", {"site": SITE, "mineral": "tin", "mass_g": 7_000,
                                                              "pit": "P3"})
    # signed on the head the attachment will make: the batch is judged in order
    dispatch = world.sign(SITE, "custody_dispatched", f"tag:{tag}", {"to": COOP},
                          prev=envelope_hash(Envelope.from_json(attach)))
    forged = world.sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": COOP})
    forged["body"]["data"]["to"] = TRADER
    not_holder = world.sign(COOP, "custody_dispatched", f"tag:{HELD}", {"to": TRADER})
    malformed = world.sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": COOP})
    del malformed["body"]["time"]
    items = [attach, dispatch, forged, attach, 42, not_holder, malformed]
    before = world.live.entries()

    response = world.http.post("/v1/events/batch", content=to_bytes(items), headers={"content-type": "application/json"})

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 201, 422, 200, 422, 422, 422]
    assert results[0]["receipt"]["hash"] == dispatch["body"]["prev"]
    assert results[1]["receipt"]["seq"] == results[0]["receipt"]["seq"] + 1
    assert results[3]["receipt"] == {**results[0]["receipt"], "duplicate": True}
    assert [(r.get("problem") or {}).get("rule") for r in results] == [
        None, None, "signature.invalid", None, "envelope.malformed", "custody.not_holder", "envelope.malformed"]
    assert results[2]["problem"]["field"] == "/sig"
    assert results[6]["problem"]["field"] == "/body/time"
    for result in results:
        if result["status"] >= 400:
            assert result["problem"]["status"] == result["status"] and result["problem"]["detail"]
    assert world.live.entries() == before + 2
    assert world.http.get(f"/v1/tags/{tag}").json()["verdict"]["code"] == "in_transit"


def test_batch_with_a_conflict_inside(world: World) -> None:
    """Two envelopes of one batch signed on the same head: the first lands, the second is a 409 item."""
    head = world.live.head(f"tag:{HELD}")
    one = world.sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": COOP}, prev=head)
    two = world.sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": TRADER}, prev=head)
    response = world.http.post("/v1/events/batch", content=to_bytes([one, two]),
                               headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert (first["status"], second["status"]) == (201, 409)
    assert second["problem"]["rule"] == "stream.conflict"
    assert second["problem"]["head"]["hash"] == first["receipt"]["hash"]


def test_batch_bodies_that_are_refused_whole(world: World) -> None:
    good = world.sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": COOP})
    for content in (b"[]", to_bytes(good), b'"x"', b"{", to_bytes([good]).replace(b'"v": 1', b'"v": 1.0'),
                    to_bytes([good] * 1001)):
        world.refused(lambda: world.http.post("/v1/events/batch", content=content,
                                              headers={"content-type": "application/json"}), 400)


def test_media_types_and_heads_as_protocol_18_says(world: World) -> None:
    """The statements of docs/protocol.md section 18 not checked above."""
    # without Content-Type the body is read as JSON; any +json type is JSON
    first = world.sign(SITE, "custody_dispatched", f"tag:{HELD}", {"to": COOP})
    request = world.http.build_request("POST", "/v1/events", content=to_bytes(first))
    assert "content-type" not in request.headers
    answer = world.http.send(request)
    assert answer.status_code == 201, answer.text
    assert set(answer.json()) == {"event_id", "seq", "received", "hash", "duplicate"}
    second = world.sign(COOP, "custody_received", f"tag:{HELD}", {"mass_g": 10_000})
    answer = world.http.post("/v1/events", content=to_bytes(second),
                             headers={"content-type": "application/merge-patch+json"})
    assert answer.status_code == 201, answer.text
    # a head by its name, percent-encoded or not; the actor's time; a site's stream before its first record
    head = world.http.get(f"/v1/streams/tag:{HELD}/head").json()
    assert world.http.get(f"/v1/streams/tag%3A{HELD}/head").json() == head
    assert (head["stream"], head["hash"], head["time"]) == (f"tag:{HELD}", answer.json()["hash"],
                                                            second["body"]["time"])
    assert_problem(world.http.get(f"/v1/streams/site:{SITE}/head"), 404, "stream.unknown")
    assert_problem(world.http.get("/v1/streams/lot:X/head"), 400, "stream.invalid", "/stream")
