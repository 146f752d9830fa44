"""The OpenAPI document served by the running API describes what the API really does."""

from __future__ import annotations

from typing import Any

import pytest

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
