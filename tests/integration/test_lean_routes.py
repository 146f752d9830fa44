"""api/lean_routes.py: the short way through the framework answers exactly what the framework answers.

Each request is sent twice to the same app, once with the lean lanes and once without them (the framework's
routing, dependencies and validation): status, headers and body must be the same bytes. The test also counts
which requests a lane took, so that it cannot pass by never taking one.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

import api.lean_routes as lean
from api.app import create_app
from tests.ledger.world import attach_and_deliver, make_world

PLAIN_READS = [
    "/v1/log/checkpoint",
    "/v1/log/proof/inclusion?index=0&size={size}",
    "/v1/log/proof/inclusion?size={size}&index=3",
    "/v1/log/proof/inclusion?index=5&size=5",  # index beyond: 400 log.range
    "/v1/log/proof/inclusion?index=0&size=999999",  # size beyond the tree: 400 log.range
    "/v1/log/proof/consistency?old=1&new={size}",
    "/v1/log/proof/consistency?old=0&new=0",
    "/v1/log/proof/consistency?old=4&new=3",
    "/v1/log/proof/consistency?old=1&new=999999",
    "/v1/log/proof/inclusion?index=1&size={size}&min_seq=2",
    "/v1/log/checkpoint?lang=fr",
]
FRAMEWORK_READS = [  # not plain: the framework answers, the lane steps aside
    "/v1/log/proof/inclusion?index=1",
    "/v1/log/proof/inclusion?index=-1&size=3",
    "/v1/log/proof/inclusion?index=01&size=3",
    "/v1/log/proof/inclusion?index=1&size=0",
    "/v1/log/proof/inclusion?index=1&index=2&size={size}",
    "/v1/log/proof/inclusion?index=%31&size={size}",
    "/v1/log/proof/inclusion?index=1&size={size}&x=%00",
    "/v1/log/proof/inclusion?index=+1&size={size}",
    "/v1/log/proof/inclusion?index=1.0&size={size}",
    "/v1/log/proof/inclusion?index=1&size=" + "9" * 30,
    "/v1/log/proof/consistency?old=a&new=3",
    "/v1/log/proof/consistency?new=3",
    "/v1/log/checkpoint?min_seq=%01",
    "/v1/log/checkpoint?x",
]


@pytest.fixture
def world(store_url: str):  # noqa: ANN201
    world = make_world(store_url, tags=8)
    for i in range(1, 5):
        attach_and_deliver(world, f"KAL-{i:06d}")
    world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
    world.ledger.publish_checkpoint()
    try:
        yield world
    finally:
        world.ledger.close()


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    taken: list[tuple[str, str]] = []
    for key, lane in list(lean.LANES.items()):
        async def counted(scope: dict[str, Any], receive: Any, lane=lane, key=key) -> Any:  # noqa: ANN001
            answer = await lane(scope, receive)
            if answer is not None:
                taken.append(key)
            return answer

        monkeypatch.setitem(lean.LANES, key, counted)
    return taken


def _answers(app: Any, requests: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[int, Any, bytes]]:
    async def send() -> list[tuple[int, Any, bytes]]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            answers = []
            for method, path, options in requests:
                response = await client.request(method, path, **options)
                answers.append((response.status_code, response.headers.multi_items(), response.content))
            return answers

    return asyncio.run(send())


def _both(app: Any, monkeypatch: pytest.MonkeyPatch, requests: list[tuple[str, str, dict[str, Any]]]
          ) -> tuple[list[Any], list[Any], list[tuple[str, str]]]:
    """Each request's (status, headers, body) with the lanes, then without them; and the lanes taken."""
    taken = _counting(monkeypatch)
    lean_answers = _answers(app, requests)
    with monkeypatch.context() as patch:
        patch.setattr(lean, "LANES", {})
        framework_answers = _answers(app, requests)
    return lean_answers, framework_answers, taken


def test_the_log_reads_are_answered_byte_for_byte_as_by_the_framework(world, monkeypatch) -> None:  # noqa: ANN001
    app = create_app(world.ledger, follow_projection=False)
    size = world.ledger.store.latest_checkpoint().size
    plain = [("GET", p.format(size=size), {}) for p in PLAIN_READS]
    other = [("GET", p.format(size=size), {}) for p in FRAMEWORK_READS]
    with_lanes, without, taken = _both(app, monkeypatch, plain + other)
    assert with_lanes == without
    assert len(taken) == len(plain)  # every plain read took its lane, no other did
    statuses = [status for status, _, _ in with_lanes]
    assert statuses[:len(plain)] == [200, 200, 200, 400, 400, 200, 200, 400, 400, 200, 200]
    # the framework's own readings, as before: a leading zero, a repeated name, %31, +1 and 1.0 are read as 1
    assert statuses[len(plain):] == [400, 400, 200, 400, 200, 200, 400, 200, 200, 400, 400, 400, 400, 200]
    assert all(("x-log-size", str(world.ledger.store.size())) in headers for _, headers, _ in with_lanes[:len(plain)])


def test_a_write_is_answered_byte_for_byte_as_by_the_framework(world, monkeypatch) -> None:  # noqa: ANN001
    app = create_app(world.ledger, follow_projection=False)
    signer = world.signer("kalimbi")
    head = world.clients["kalimbi"].transport.head("tag:KAL-000006")
    accepted = signer.envelope("tag_attached", "tag:KAL-000006", head,
                               {"site": "kalimbi", "mineral": "tin", "mass_g": 1000, "pit": "P1"},
                               time=world.tick())
    forged = {**accepted, "sig": accepted["sig"][:-4] + ("AAAA" if not accepted["sig"].endswith("AAAA") else "BBBB")}
    [(status, _, receipt)] = _answers(app, [("POST", "/v1/events", {"json": accepted})])
    assert status == 201
    requests = [
        ("POST", "/v1/events", {"json": accepted}),  # 200: already recorded, the same receipt
        ("POST", "/v1/events", {"json": forged}),  # the same id, another signature: 409
        ("POST", "/v1/events", {"content": b"{\"body\": 1.5}", "headers": {"content-type": "application/json"}}),
        ("POST", "/v1/events", {"content": b"{}", "headers": {"content-type": "text/plain"}}),
        ("POST", "/v1/events", {"content": b"[]", "headers": {"content-type": "application/json"}}),
        ("POST", "/v1/events?x=%00", {"json": accepted}),  # not plain: the framework's parameter check
    ]
    with_lanes, without, taken = _both(app, monkeypatch, requests)
    assert with_lanes == without
    assert taken == [("POST", "/v1/events")] * (len(requests) - 1)
    assert [status for status, _, _ in with_lanes] == [200, 409, 400, 415, 422, 400]
    assert json.loads(with_lanes[0][2])["seq"] == json.loads(receipt)["seq"]


def test_requests_are_counted_under_their_route(world, monkeypatch) -> None:  # noqa: ANN001
    from api.metrics import HTTP_REQUESTS

    app = create_app(world.ledger, follow_projection=False)
    size = world.ledger.store.latest_checkpoint().size
    counter = HTTP_REQUESTS.labels("GET", "/v1/log/proof/inclusion", "200")
    before = counter._value.get()  # noqa: SLF001
    taken = _counting(monkeypatch)
    answers = _answers(app, [("GET", f"/v1/log/proof/inclusion?index={index}&size={size}", {}) for index in range(3)])
    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert len(taken) == 3
    assert counter._value.get() == before + 3  # noqa: SLF001


def test_a_store_failure_is_answered_as_by_the_framework(world, monkeypatch) -> None:  # noqa: ANN001
    from eventsourcing.persistence import OperationalError

    app = create_app(world.ledger, follow_projection=False)

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("the store went away")

    monkeypatch.setattr(world.ledger.store, "latest_checkpoint", failing)
    with_lanes, without, taken = _both(app, monkeypatch, [("GET", "/v1/log/checkpoint", {})])
    assert with_lanes == without
    assert taken == []  # the lane raised; the handler registered for the store's errors answered it
    assert with_lanes[0][0] == 503 and b"storage.unavailable" in with_lanes[0][2]
