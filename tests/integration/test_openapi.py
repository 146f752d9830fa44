"""The OpenAPI document served by the running API describes what the API really does."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from domain.roles import EVENT_TYPES
from ledger.client import LocalTransport, Signer
from ledger.demo import DEMO_DAYS, load_demo
from ledger.entries import read_entry
from ledger.genesis import GenesisKeys, create_ledger
from ledger.keys import KeyPair
from ledger.service import Ledger

PROBLEM = "application/problem+json"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

# The document does not depend on the backend: one server (SQLite) is enough.
pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@pytest.fixture
def openapi(live_ledger) -> dict[str, Any]:
    response = live_ledger.http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def _operations(document: dict[str, Any]):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        return document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def test_document_basics(openapi) -> None:
    assert openapi["openapi"].startswith("3.")
    assert openapi["info"]["title"] == "tagledger"
    assert openapi["info"]["description"].strip()
    for path in ("/v1/events", "/v1/events/batch", "/v1/tags/{tag_id}", "/v1/streams/{stream}/head",
                 "/v1/orgs", "/v1/orgs/{org_id}", "/v1/ledger"):
        assert path in openapi["paths"], path


def test_every_operation_has_a_written_summary(openapi) -> None:
    seen = 0
    for path, method, operation in _operations(openapi):
        seen += 1
        summary = operation.get("summary", "")
        assert summary.strip(), f"{method.upper()} {path} has no summary"
        # FastAPI's fallback is the function name in title case ("Get Tag"): a summary someone wrote is not that
        generated = operation.get("operationId", "").split("_v1")[0].replace("_", " ").title()
        assert summary != generated, f"{method.upper()} {path}: summary {summary!r} was generated, not written"
    assert seen >= 7


def test_post_events_documents_its_answers(openapi) -> None:
    operation = openapi["paths"]["/v1/events"]["post"]
    responses = operation["responses"]
    for status in ("201", "200"):
        schema = _resolve(openapi, responses[status]["content"]["application/json"]["schema"])
        assert {"event_id", "seq", "received", "hash", "duplicate"} <= set(schema["properties"])
    for status in ("400", "409", "413", "415", "422", "503"):
        assert status in responses, f"POST /v1/events does not document {status}"
        assert PROBLEM in responses[status]["content"], f"{status} is not documented as {PROBLEM}"
        assert responses[status]["description"].strip()
    # the request body is a signed envelope
    body = operation["requestBody"]
    assert body["required"] is True
    envelope = body["content"]["application/json"]["schema"]
    assert set(envelope["required"]) == {"body", "sig"}
    assert envelope["additionalProperties"] is False


def test_get_tag_documents_404_and_400(openapi) -> None:
    operation = openapi["paths"]["/v1/tags/{tag_id}"]["get"]
    assert "404" in operation["responses"]
    assert PROBLEM in operation["responses"]["404"]["content"]
    assert "400" in operation["responses"]
    assert operation["parameters"][0]["name"] == "tag_id"
    assert operation["parameters"][0]["in"] == "path"


def test_the_problem_schema_is_published(openapi) -> None:
    problem = openapi["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    assert {"rule", "field"} <= set(problem["properties"])


def test_problem_responses_carry_the_problem_schema(openapi) -> None:
    for path, method, operation in _operations(openapi):
        for status, response in operation["responses"].items():
            if not status.startswith(("4", "5")):
                continue
            content = response.get("content", {})
            assert PROBLEM in content, f"{method.upper()} {path} {status}"
            schema = _resolve(openapi, content[PROBLEM].get("schema", {}))
            assert "detail" in schema.get("properties", {}), f"{method.upper()} {path} {status}: {content}"
            assert "application/json" not in content, f"{method.upper()} {path} {status} is never application/json"


def test_no_undocumented_validation_422(openapi, live_ledger) -> None:
    # what the server really answers to a validation error
    assert live_ledger.http.get("/v1/tags", params={"limit": "0"}).status_code == 400
    documented = [f"{method.upper()} {path}" for path, method, operation in _operations(openapi)
                  if "HTTPValidationError" in str(operation["responses"].get("422", ""))]
    assert documented == []


@pytest.fixture
def demo_envelopes(tmp_path) -> list[dict[str, Any]]:
    """Every envelope of the demo data set (which records every event type), as the ledger accepted them."""
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'demo.db'}")
    try:
        keys = GenesisKeys(KeyPair.generate(), KeyPair.generate())
        create_ledger(ledger, name="demo", operator="itsci", operator_name="ITSCI", country="CD",
                      log_key_name="demo.test/log", keys=keys,
                      time=datetime.now(timezone.utc) - timedelta(days=DEMO_DAYS + 30))
        load_demo(LocalTransport(ledger), Signer("itsci", keys.root), seed=7, tags_per_site=8)
        return [read_entry(stored.data).envelope for stored in ledger.store.iter_all()]
    finally:
        ledger.close()


def test_every_event_type_validates_against_the_published_request_schema(openapi, demo_envelopes) -> None:
    """The request schemas of POST /v1/events and /v1/events/batch accept every envelope the ledger accepts
    (before issue 11 their `stream` pattern refused the `incident:` and `site:` streams of risk events)."""
    single = openapi["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    batch = openapi["paths"]["/v1/events/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    one, many = (jsonschema.Draft202012Validator(schema, format_checker=checker) for schema in (single, batch))
    types = Counter(envelope["body"]["type"] for envelope in demo_envelopes)
    assert set(types) == set(EVENT_TYPES), set(EVENT_TYPES) - set(types)
    streams = {envelope["body"]["stream"].split(":")[0] for envelope in demo_envelopes}
    assert streams == {"ledger", "org", "tag", "incident", "site"}
    for envelope in demo_envelopes:
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in one.iter_errors(envelope)]
        assert not errors, (envelope["body"]["type"], envelope["body"]["stream"], errors)
    assert not list(many.iter_errors(demo_envelopes[1:1001]))
    # and the schema is not vacuous: what the ledger refuses as malformed, it refuses too
    sample = next(e for e in demo_envelopes if e["body"].get("links"))
    for path, bad in ((("body", "stream"), "incident:inc-1"), (("body", "stream"), "lot:LOT-1"),
                      (("body", "actor"), "Not An Org"), (("body", "links"), {"org:itsci": None}),
                      (("body", "links"), {}), (("body", "prev"), "ab"), (("sig",), "x" * 86 + "=")):
        mutated = {**sample, "body": dict(sample["body"])}
        target = mutated if path == ("sig",) else mutated["body"]
        target[path[-1]] = bad
        assert list(one.iter_errors(mutated)), (path, bad)


def _protocol_section(number: int) -> dict[str, str]:
    """Section `number` of docs/protocol.md: its text by subsection heading ("" for the text before the first)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    start = re.search(rf"^## {number}\. .*$", text, re.M)
    assert start is not None, f"docs/protocol.md has no section {number}"
    end = re.search(r"^## ", text[start.end():], re.M)
    body = text[start.end(): start.end() + end.start() if end else len(text)]
    parts = re.split(rf"^### ({number}\.\d+ .*)$", body, flags=re.M)
    return {"": parts[0], **dict(zip(parts[1::2], parts[2::2]))}


def test_the_write_endpoints_are_specified_in_the_protocol(openapi) -> None:
    """docs/protocol.md section 18 specifies the write endpoints as the code behaves: an outsider need not read
    /openapi.json (issue 11.8). Every figure and name below is taken from the code or the served document."""
    from api import body, routes_events
    from api.schemas import BatchItem, HeadOut, ReceiptOut

    section = _protocol_section(18)
    by_operation = {}
    for (method, path), words in {("post", "/v1/events"): "one envelope", ("post", "/v1/events/batch"): "many",
                                  ("get", "/v1/streams/{stream}/head"): "what to sign"}.items():
        headings = [h for h in section if f"`{method.upper()} {path}`" in h]
        assert len(headings) == 1 and words in headings[0], (method, path, list(section))
        by_operation[method, path] = text = section[headings[0]]
        for status in openapi["paths"][path][method]["responses"]:
            assert re.search(rf"\b{status}\b", text), f"{method.upper()} {path}: status {status} is not specified"
    single, batch, head = by_operation.values()
    # the limits, in bytes and in envelopes
    assert f"{body.MAX_EVENT_BYTES:,} bytes" in single and body.MAX_EVENT_BYTES == 1 << 20 and "1 MiB" in single
    assert f"{routes_events.MAX_BATCH_BYTES:,} bytes" in batch and f"1 to {routes_events.MAX_BATCH:,}" in batch
    # every rule the request reading answers with (api/body.py), and those of the endpoints
    read_rules = set(re.findall(r'BadBody\(\d+, "([a-z_.]+)"', Path(body.__file__).read_text()))
    assert read_rules == {"request.media_type", "request.too_large", "request.malformed_json"}
    for rule in read_rules | {"request.invalid", "envelope.malformed", "stream.conflict", "event.duplicate_id",
                              "storage.unavailable"}:
        assert f"`{rule}`" in single, rule
    for rule in ("stream.invalid", "stream.unknown"):
        assert f"`{rule}`" in head, rule
    # the members of the receipt, of a batch item and of a head, as the response models publish them
    for model, text in ((ReceiptOut, single), (BatchItem, batch), (HeadOut, head)):
        for member in model.model_fields:
            assert f"`{member}`" in text, (model.__name__, member)
