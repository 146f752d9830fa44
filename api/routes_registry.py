"""Organisations, keys and stream heads: what a client needs to sign its next event."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.parameters import PARAMETER_CHECKS
from api.problems import problem, responses
from api.schemas import HeadOut
from ledger.service import Ledger
from verification.encoding import format_time
from verification.envelope import is_stream

router = APIRouter(tags=["registry"], dependencies=PARAMETER_CHECKS)


@router.get(
    "/v1/streams/{stream}/head",
    response_model=HeadOut,
    summary="The last event of a stream",
    description="Sign your next event on this stream with `prev` = `hash`. 404 if the stream does not exist.",
    responses=responses(400, 404),
)
def get_head(stream: str, request: Request) -> Any:
    ledger: Ledger = request.app.state.ledger
    if not is_stream(stream):
        return problem(400, "stream.invalid", f"{stream!r} is not a stream name", field="/stream")
    head = ledger.head(stream)
    if head is None:
        return problem(404, "stream.unknown", f"{stream} does not exist")
    return {"stream": stream, "hash": head.hash, "seq": head.seq, "time": format_time(head.time)}


@router.get("/v1/orgs", summary="All registered organisations")
def list_orgs(request: Request) -> Any:
    registry = request.app.state.ledger.registry()
    return {"orgs": [org.to_json() for org in registry.orgs.values()]}


@router.get("/v1/orgs/{org_id}", summary="One organisation and its keys", responses=responses(404))
def get_org(org_id: str, request: Request) -> Any:
    registry = request.app.state.ledger.registry()
    org = registry.orgs.get(org_id)
    if org is None:
        return problem(404, "org.unknown", f"no organisation {org_id!r}")
    return {**org.to_json(), "keys": [registry.keys[k].to_json() for k in org.kids]}


@router.get("/v1/ledger", summary="The ledger's parameters and size")
def get_ledger(request: Request) -> Any:
    ledger: Ledger = request.app.state.ledger
    registry = ledger.registry()
    params = registry.ledger
    return {
        "entries": ledger.store.size(),
        "backend": ledger.store.backend,
        "ledger": None if params is None else {
            "name": params.name,
            "operator": params.operator,
            "root_key": params.root_key,
            "log_key": {"name": params.log_key_name, "public_key": params.log_public_key},
            "mass_tolerance_ppm": params.mass_tolerance_ppm,
        },
    }
