"""The verifiable log over real HTTP, on both backends, checked the way an outsider would check it.

Every read is an anonymous GET on `live.http`; every check uses only `verification/` (the reference verifier of
docs/protocol.md): the log key from `GET /v1/log/key`, checkpoints opened with it, entries decoded and hashed
here, Merkle proofs verified here. The only ledger call is `live.ledger.publish_checkpoint()`, which stands in
for the background publisher (it signs a checkpoint now instead of within the second).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from verification.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from verification.encoding import b64url_decode
from verification.entry import decode_entry, encode_entry
from verification.envelope import Envelope, envelope_hash
from verification.merkle import (
    EMPTY_ROOT,
    ProofError,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from verification.note import NoteVerifier, parse_vkey

SITE, COOP, TRADER = "kalimbi-site", "nyabibwe-coop", "bukavu-trader"
BAGS = [f"KAL-{i:06d}" for i in range(1, 4)]
PAGE = 1000  # MAX_ENTRIES of /v1/log/entries
PROJECTION_TIMEOUT = 10.0


# ------------------------------------------------------------------------------------------------
# What an outsider does: fetch, open, hash, verify
# ------------------------------------------------------------------------------------------------


def get_ok(live, path: str, **params: Any) -> httpx.Response:
    response = live.http.get(path, params=params)
    assert "authorization" not in response.request.headers
    assert response.status_code == 200, (path, params, response.text)
    return response


def log_verifier(live) -> NoteVerifier:
    """The log's note key from `GET /v1/log/key`, cross-checked against the genesis entry (entry 0)."""
    answer = get_ok(live, "/v1/log/key").json()
    verifier = parse_vkey(answer["vkey"])
    genesis = decode_entry(get_ok(live, "/v1/log/entries", start=0, end=1).content.rstrip(b"\n"))
    declared = genesis.envelope.body["data"]["log_key"]
    assert genesis.seq == 0 and genesis.envelope.body["type"] == "ledger_created"
    assert verifier.public_key_raw == b64url_decode(declared["public_key"])
    assert verifier.name == declared["name"] == answer["origin"]
    assert b64url_decode(answer["log_public_key"]) == verifier.public_key_raw
    assert answer["root_key"] == genesis.envelope.body["data"]["root_key"]
    return verifier


def latest_checkpoint(live, verifier: NoteVerifier) -> tuple[Checkpoint, str]:
    response = get_ok(live, "/v1/log/checkpoint")
    assert response.headers["content-type"].startswith("text/plain")
    return open_checkpoint(response.text, verifier), response.text


def publish(live, verifier: NoteVerifier) -> tuple[Checkpoint, str]:
    """Have the ledger sign a checkpoint of everything now; return it as served (opened) and its note."""
    live.ledger.publish_checkpoint()
    checkpoint, note = latest_checkpoint(live, verifier)
    assert checkpoint.size == live.entries()
    return checkpoint, note


def all_entries(live, page: int = PAGE) -> list[bytes]:
    """Every entry's exact bytes, paging through `/v1/log/entries` `page` at a time."""
    lines: list[bytes] = []
    while True:
        response = get_ok(live, "/v1/log/entries", start=len(lines), end=len(lines) + page)
        assert response.headers["content-type"].startswith("application/x-ndjson")
        assert response.headers["x-log-start"] == str(len(lines))
        body = response.content
        if not body:
            return lines
        assert body.endswith(b"\n")
        chunk = body[:-1].split(b"\n")
        assert len(chunk) <= page
        lines.extend(chunk)


def check_entries(lines: list[bytes]) -> None:
    for position, raw in enumerate(lines):
        entry = decode_entry(raw)  # strict: canonical bytes, exact fields
        assert entry.seq == position and entry.raw == raw


def assert_problem(response: httpx.Response, what: Any) -> None:
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), (what, response.headers)
    body = response.json()
    assert body["status"] == response.status_code and body["detail"], (what, body)


# ------------------------------------------------------------------------------------------------
# A small custody world
# ------------------------------------------------------------------------------------------------


def small_world(live) -> dict[str, Any]:
    site = live.register(SITE, "site", name="Kalimbi mine site")
    coop = live.register(COOP, "cooperative")
    trader = live.register(TRADER, "trader")
    live.operator.issue_tags(SITE, prefix="KAL-", start=1, count=len(BAGS), width=6)
    site.attach(BAGS[0], mineral="tin", ore="cassiterite", mass_g=10_000, pit="Pit 7")
    site.dispatch(BAGS[0], COOP, location="road N2")
    coop.receive(BAGS[0], mass_g=9_950, location="warehouse")
    return {"site": site, "coop": coop, "trader": trader}


def issue_one_by_one(live, org: str, count: int, prefix: str = "BULK-") -> int:
    """`count` single-tag `tags_issued` events (so `count` entries), chained locally and posted in batches."""
    signer = live.operator.signer
    prev = live.head(f"org:{org}")
    issued = 0
    while issued < count:
        batch = []
        for i in range(issued, min(count, issued + 1000)):
            envelope = signer.envelope("tags_issued", f"org:{org}", prev, {"tags": [f"{prefix}{i:06d}"]})
            prev = envelope_hash(Envelope.from_json(envelope))
            batch.append(envelope)
        response = live.http.post("/v1/events/batch", json=batch)
        assert response.status_code == 200, response.text
        statuses = [r["status"] for r in response.json()["results"]]
        assert statuses == [201] * len(batch), [r for r in response.json()["results"] if r["status"] != 201][:3]
        issued += len(batch)
    return issued


# ------------------------------------------------------------------------------------------------
# 1-2. The key, the checkpoint and the entries
# ------------------------------------------------------------------------------------------------


def test_checkpoint_commits_to_the_served_entries(live_ledger) -> None:
    live = live_ledger
    small_world(live)
    verifier = log_verifier(live)
    checkpoint, note = publish(live, verifier)
    assert checkpoint.origin == verifier.name

    lines = all_entries(live)
    assert len(lines) == checkpoint.size == live.entries()
    check_entries(lines)
    leaves = [leaf_hash(line) for line in lines]
    assert root_from_leaf_hashes(leaves) == checkpoint.root_hash

    # the stored leaf hashes are the same (what an auditor uses to find a damaged entry)
    stored = get_ok(live, "/v1/log/leaf-hashes").content
    assert [stored[i:i + 32] for i in range(0, len(stored), 32)] == leaves

    # the same bytes whatever the paging, and a page starting at the end is empty
    assert all_entries(live, page=3) == lines
    assert get_ok(live, "/v1/log/entries", start=2, end=5).content == b"".join(l + b"\n" for l in lines[2:5])
    assert get_ok(live, "/v1/log/entries", start=4).content == b"".join(l + b"\n" for l in lines[4:])
    assert get_ok(live, "/v1/log/entries", start=3, end=3).content == b""
    assert get_ok(live, "/v1/log/entries", start=len(lines)).content == b""
    assert get_ok(live, "/v1/log/entries", start=1, end=10**9).content == b"".join(l + b"\n" for l in lines[1:])

    # the note is served verbatim, and a note altered by one byte is refused
    assert open_checkpoint(note.encode(), verifier) == checkpoint
    with pytest.raises(ValueError):
        open_checkpoint(note.replace(str(checkpoint.size), str(checkpoint.size + 1), 1), verifier)


def test_entries_are_served_at_most_a_thousand_at_a_time(live_ledger) -> None:
    live = live_ledger
    live.register(SITE, "site")
    issue_one_by_one(live, SITE, 1002)
    size = live.entries()
    assert size > PAGE

    first = get_ok(live, "/v1/log/entries")  # no bounds: the first page
    first_lines = first.content[:-1].split(b"\n")
    assert len(first_lines) == PAGE
    # the cap, not the end of the log, cut the answer: it says so (protocol 11.3)
    assert first.headers["x-log-count"] == str(PAGE)
    assert first.headers["link"] == f'</v1/log/entries?start={PAGE}>; rel="next"'
    capped = get_ok(live, "/v1/log/entries", start=0, end=size)
    assert capped.content == first.content  # end is capped too
    assert capped.headers["link"] == f'</v1/log/entries?start={PAGE}&end={size}>; rel="next"'
    second = get_ok(live, "/v1/log/entries", start=PAGE)
    assert second.headers["x-log-start"] == str(PAGE)
    assert second.headers["x-log-count"] == str(size - PAGE) and "link" not in second.headers  # the end
    lines = first_lines + second.content[:-1].split(b"\n")
    assert len(lines) == size
    check_entries(lines)
    assert lines == all_entries(live)

    verifier = log_verifier(live)
    checkpoint, _ = publish(live, verifier)
    assert root_from_leaf_hashes(leaf_hash(line) for line in lines) == checkpoint.root_hash
    # the last entry: a proof through a tree deeper than one page
    proof = get_ok(live, "/v1/log/proof/inclusion", index=size - 1, size=size).json()
    verify_inclusion(leaf_hash(lines[-1]), size - 1, size, [bytes.fromhex(h) for h in proof["hashes"]],
                     checkpoint.root_hash)


# ------------------------------------------------------------------------------------------------
# 3. Inclusion and consistency proofs
# ------------------------------------------------------------------------------------------------


def inclusion(live, index: int, size: int) -> tuple[bytes, list[bytes]]:
    answer = get_ok(live, "/v1/log/proof/inclusion", index=index, size=size).json()
    assert (answer["index"], answer["size"]) == (index, size)
    return bytes.fromhex(answer["leaf_hash"]), [bytes.fromhex(h) for h in answer["hashes"]]


def consistency(live, old: int, new: int) -> list[bytes]:
    answer = get_ok(live, "/v1/log/proof/consistency", old=old, new=new).json()
    assert (answer["old"], answer["new"]) == (old, new)
    return [bytes.fromhex(h) for h in answer["hashes"]]


def _follow(live, path: str, **params: Any) -> tuple[list[bytes], int]:
    """Every page from `path?params`, following `Link: <...>; rel="next"` until there is none: (bodies, pages)."""
    bodies, url = [], live.http.build_request("GET", path, params=params).url
    while True:
        response = live.http.get(url)
        assert response.status_code == 200, response.text
        bodies.append(response.content)
        if "next" not in response.links:
            return bodies, len(bodies)
        url = response.links["next"]["url"]


def test_an_answer_cut_by_the_cap_links_to_the_rest(live_ledger, monkeypatch) -> None:
    """Fewer lines than asked means the log ends there only when there is no `next` link (protocol 11.3)."""
    from api import routes_log

    live = live_ledger
    small_world(live)
    size = live.entries()
    lines = all_entries(live)
    monkeypatch.setattr(routes_log, "MAX_ENTRIES", 3)
    monkeypatch.setattr(routes_log, "MAX_LEAF_HASHES", 4)
    for params in ({}, {"start": 1}, {"start": 2, "end": size - 1}, {"start": 0, "end": 10**6}):
        bodies, pages = _follow(live, "/v1/log/entries", **params)
        first, last = params.get("start", 0), min(size, params.get("end", size))
        assert b"".join(bodies) == b"".join(line + b"\n" for line in lines[first:last]), params
        assert pages == max(1, -(-(last - first) // 3)) and all(b.count(b"\n") <= 3 for b in bodies)
        hashes, _ = _follow(live, "/v1/log/leaf-hashes", **params)
        assert b"".join(hashes) == b"".join(leaf_hash(line) for line in lines[first:last]), params
    page = get_ok(live, "/v1/log/entries", start=1, end=3)  # all that was asked: no link
    assert page.headers["x-log-count"] == "2" and "link" not in page.headers
    page = get_ok(live, "/v1/log/entries", start=size - 2, end=size + 5)  # the log ends: fewer, and no link
    assert page.headers["x-log-count"] == "2" and "link" not in page.headers
    page = get_ok(live, "/v1/log/entries", start=size)
    assert (page.content, page.headers["x-log-count"]) == (b"", "0") and "link" not in page.headers


def test_inclusion_and_consistency_proofs_verify(live_ledger) -> None:
    live = live_ledger
    orgs = small_world(live)
    verifier = log_verifier(live)
    old, old_note = publish(live, verifier)

    orgs["coop"].dispatch(BAGS[0], TRADER)
    orgs["trader"].receive(BAGS[0], mass_g=9_900)
    live.operator.issue_tags(SITE, tags=["LOT-0001"])
    new, new_note = publish(live, verifier)
    assert new.size == old.size + 3

    lines = all_entries(live)
    assert len(lines) == new.size
    for tree in (old, new):
        for index in range(tree.size):
            leaf, proof = inclusion(live, index, tree.size)
            assert leaf == leaf_hash(lines[index])
            verify_inclusion(leaf, index, tree.size, proof, tree.root_hash)
            with pytest.raises(ProofError):  # and it proves nothing about another entry
                verify_inclusion(leaf_hash(lines[index - 1]), index, tree.size, proof, tree.root_hash)

    verify_consistency(old.size, new.size, old.root_hash, new.root_hash, consistency(live, old.size, new.size))
    # every size along the way is consistent with the new tree (roots recomputed from the entries)
    for size in range(0, new.size + 1):
        root = root_from_leaf_hashes(leaf_hash(line) for line in lines[:size])
        verify_consistency(size, new.size, root, new.root_hash, consistency(live, size, new.size))
    assert consistency(live, 0, 0) == [] and consistency(live, new.size, new.size) == []

    # /v1/log/checkpoints lists both signed checkpoints (and whatever the background publisher signed), in order
    listed = get_ok(live, "/v1/log/checkpoints").json()["checkpoints"]
    sizes = [c["size"] for c in listed]
    assert sizes == sorted(set(sizes)) and {old.size, new.size} <= set(sizes)
    by_size = {c["size"]: c for c in listed}
    assert by_size[old.size]["note"] == old_note and by_size[new.size]["note"] == new_note
    opened = [open_checkpoint(c["note"], verifier) for c in listed]
    for c, cp in zip(listed, opened, strict=True):
        assert (cp.size, cp.root_hash.hex()) == (c["size"], c["root"])
    for a, b in zip(opened, opened[1:]):  # the log only ever grew
        verify_consistency(a.size, b.size, a.root_hash, b.root_hash, consistency(live, a.size, b.size))
    # paging the list
    after = get_ok(live, "/v1/log/checkpoints", after_size=old.size, limit=1).json()["checkpoints"]
    assert [c["size"] for c in after] == [s for s in sizes if s > old.size][:1]


# ------------------------------------------------------------------------------------------------
# 4-5. Proofs in the tag view
# ------------------------------------------------------------------------------------------------


def check_tag_proofs(document: dict[str, Any], verifier: NoteVerifier) -> tuple[Checkpoint, list[int]]:
    """Verify every event's inclusion proof against the view's own checkpoint; return it and the unproven seqs."""
    log = document["log"]
    assert log is not None
    checkpoint = open_checkpoint(log["checkpoint"], verifier)
    assert (checkpoint.size, checkpoint.root_hash.hex()) == (log["size"], log["root"])
    unproven = []
    for event in document["events"]:
        assert event["log_index"] == event["seq"]
        raw = encode_entry(event["seq"], event["received"], Envelope.from_json(event["envelope"]))
        proof = event["inclusion_proof"]
        if proof is None:
            assert event["log_index"] >= checkpoint.size, event
            unproven.append(event["seq"])
            continue
        assert event["log_index"] < checkpoint.size
        assert proof["size"] == checkpoint.size
        verify_inclusion(leaf_hash(raw), event["log_index"], proof["size"],
                         [bytes.fromhex(h) for h in proof["hashes"]], checkpoint.root_hash)
    return checkpoint, unproven


def test_tag_view_events_carry_inclusion_proofs(live_ledger) -> None:
    live = live_ledger
    orgs = small_world(live)
    verifier = log_verifier(live)
    publish(live, verifier)

    document = get_ok(live, f"/v1/tags/{BAGS[0]}").json()
    assert [e["type"] for e in document["events"]] == [
        "tags_issued", "tag_attached", "custody_dispatched", "custody_received"]
    checkpoint, unproven = check_tag_proofs(document, verifier)
    assert unproven == [] and checkpoint.size == live.entries()
    # the proofs lead to the root of the log as served
    assert root_from_leaf_hashes(leaf_hash(line) for line in all_entries(live)) == checkpoint.root_hash

    # an event recorded after the latest checkpoint has no proof until the next one (the background
    # publisher may sign in between: then try again with the next event)
    seen_unproven = None
    hops = [(orgs["coop"], TRADER, orgs["trader"]), (orgs["trader"], COOP, orgs["coop"])] * 3
    for sender, to, _ in hops:
        seq = sender.dispatch(BAGS[0], to)["seq"]
        document = get_ok(live, f"/v1/tags/{BAGS[0]}").json()
        checkpoint, unproven = check_tag_proofs(document, verifier)
        if unproven:
            assert unproven == [seq] and document["events"][-1]["seq"] == seq
            seen_unproven = seq
            break
        _, _, receiver = next(h for h in hops if h[0] is sender)
        receiver.receive(BAGS[0], mass_g=9_950)
    assert seen_unproven is not None, "every new event already had a proof: the publisher always raced the GET"

    publish(live, verifier)
    document = get_ok(live, f"/v1/tags/{BAGS[0]}").json()
    checkpoint, unproven = check_tag_proofs(document, verifier)
    assert unproven == [] and checkpoint.size == live.entries() > seen_unproven


def test_tag_view_as_of_a_checkpoint(live_ledger) -> None:
    live = live_ledger
    orgs = small_world(live)
    verifier = log_verifier(live)
    old, old_note = publish(live, verifier)
    orgs["coop"].dispatch(BAGS[0], TRADER)
    orgs["trader"].receive(BAGS[0], mass_g=9_900)
    publish(live, verifier)

    now = get_ok(live, f"/v1/tags/{BAGS[0]}").json()
    assert now["state"]["holder"] == TRADER and now["as_of"] is None
    then = get_ok(live, f"/v1/tags/{BAGS[0]}", as_of=old.size).json()
    assert then["as_of"] == old.size
    assert then["state"]["holder"] == COOP and then["verdict"]["code"] == "in_custody"
    assert [e["seq"] for e in then["events"]] == [e["seq"] for e in now["events"] if e["seq"] < old.size]
    # proven against the checkpoint of exactly that size
    assert then["log"]["checkpoint"] == old_note
    checkpoint, unproven = check_tag_proofs(then, verifier)
    assert checkpoint == old and unproven == []

    # before the dispatch was recorded: the view stops there (proofs against the latest checkpoint)
    dispatch = next(e["seq"] for e in now["events"] if e["type"] == "custody_dispatched")
    earlier = get_ok(live, f"/v1/tags/{BAGS[0]}", as_of=dispatch).json()
    assert [e["type"] for e in earlier["events"]] == ["tags_issued", "tag_attached"]
    assert earlier["state"]["holder"] == SITE
    _, unproven = check_tag_proofs(earlier, verifier)
    assert unproven == []

    # before the tag was issued: unknown
    issued = now["events"][0]["seq"]
    unknown = live.http.get(f"/v1/tags/{BAGS[0]}", params={"as_of": issued})
    assert unknown.status_code == 404 and unknown.json()["verdict"]["code"] == "unknown"
    assert unknown.headers["content-type"].startswith("application/problem+json")


# ------------------------------------------------------------------------------------------------
# 6. Bad input: 4xx problem documents, never 500
# ------------------------------------------------------------------------------------------------


def test_bad_log_requests_are_problems(live_ledger) -> None:
    live = live_ledger
    small_world(live)
    verifier = log_verifier(live)
    n, _ = publish(live, verifier)
    size = n.size
    huge = 2**70
    cases: list[tuple[str, dict[str, Any]]] = [
        # inclusion
        ("/v1/log/proof/inclusion", {"index": size, "size": size}),  # index >= size
        ("/v1/log/proof/inclusion", {"index": 3, "size": 2}),
        ("/v1/log/proof/inclusion", {"index": 0, "size": size + 1}),  # size > tree size
        ("/v1/log/proof/inclusion", {"index": 0, "size": 0}),
        ("/v1/log/proof/inclusion", {"index": -1, "size": 1}),
        ("/v1/log/proof/inclusion", {"index": 0, "size": -1}),
        ("/v1/log/proof/inclusion", {"index": "x", "size": 1}),
        ("/v1/log/proof/inclusion", {"index": "1.5", "size": 2}),
        ("/v1/log/proof/inclusion", {"index": 0, "size": ""}),
        ("/v1/log/proof/inclusion", {"size": 1}),
        ("/v1/log/proof/inclusion", {"index": 0}),
        ("/v1/log/proof/inclusion", {}),
        ("/v1/log/proof/inclusion", {"index": huge, "size": huge + 1}),
        ("/v1/log/proof/inclusion", {"index": 0, "size": huge}),
        # consistency
        ("/v1/log/proof/consistency", {"old": size, "new": size - 1}),  # old > new
        ("/v1/log/proof/consistency", {"old": 1, "new": size + 1}),  # new > tree size
        ("/v1/log/proof/consistency", {"old": size + 1, "new": size + 1}),
        ("/v1/log/proof/consistency", {"old": -1, "new": 1}),
        ("/v1/log/proof/consistency", {"old": 0, "new": -1}),
        ("/v1/log/proof/consistency", {"old": "a", "new": 1}),
        ("/v1/log/proof/consistency", {"old": 1, "new": "2e3"}),
        ("/v1/log/proof/consistency", {"old": 1}),
        ("/v1/log/proof/consistency", {"new": 1}),
        ("/v1/log/proof/consistency", {}),
        ("/v1/log/proof/consistency", {"old": 0, "new": huge}),
        # entries and leaf hashes
        *[(path, params) for path in ("/v1/log/entries", "/v1/log/leaf-hashes") for params in (
            {"start": size + 1},  # beyond the end
            {"start": huge},
            {"start": 3, "end": 2},  # end < start
            {"start": -1},
            {"end": -1},
            {"start": "one"},
            {"start": 0.5},
            {"end": "z"},
        )],
        # checkpoints
        ("/v1/log/checkpoints", {"after_size": -2}),
        ("/v1/log/checkpoints", {"after_size": "x"}),
        ("/v1/log/checkpoints", {"limit": 0}),
        ("/v1/log/checkpoints", {"limit": 1001}),
        ("/v1/log/checkpoints", {"after_size": huge}),  # was a 500 on SQLite (OverflowError)
        # the tag view as of a log size
        (f"/v1/tags/{BAGS[0]}", {"as_of": 0}),
        (f"/v1/tags/{BAGS[0]}", {"as_of": -5}),
        (f"/v1/tags/{BAGS[0]}", {"as_of": "yesterday"}),
    ]
    failures = []
    for path, params in cases:
        try:
            response = live.http.get(path, params=params)
        except httpx.TransportError as error:
            failures.append(f"{path} {params}: {error!r}")
            continue
        try:
            assert_problem(response, (path, params))
        except AssertionError as error:
            failures.append(f"{path} {params}: {response.status_code} {response.text[:200]} ({error})")
    assert failures == [], "\n".join(failures)
    # the valid edges around them still answer
    assert get_ok(live, "/v1/log/proof/inclusion", index=size - 1, size=size).json()["size"] == size
    assert get_ok(live, "/v1/log/proof/consistency", old=0, new=size).json()["hashes"] == []


def test_tag_view_as_of_beyond_the_log_is_not_an_error(live_ledger) -> None:
    """`as_of` larger than any log: PostgreSQL answers the current view (200); SQLite used to answer 500
    (OverflowError binding 2**70 in `store.checkpoint(as_of)`). Either way, never a 500."""
    live = live_ledger
    small_world(live)
    for as_of in (live.entries() + 10, 2**63 - 1, 2**70):
        response = live.new_http().get(f"/v1/tags/{BAGS[0]}", params={"as_of": as_of})
        if response.status_code == 200:
            assert response.json()["as_of"] == as_of
            assert response.json()["events"] == get_ok(live, f"/v1/tags/{BAGS[0]}").json()["events"]
        else:
            assert_problem(response, as_of)


# ------------------------------------------------------------------------------------------------
# 7. The projection's digest
# ------------------------------------------------------------------------------------------------


def test_projection_catches_up_with_the_log(live_ledger) -> None:
    live = live_ledger
    small_world(live)
    live.operator.issue_tags(TRADER, tags=["LOT-0001", "LOT-0002"])
    entries = live.entries()
    deadline = time.monotonic() + PROJECTION_TIMEOUT
    while True:
        summary = get_ok(live, "/v1/projection").json()
        if summary["position"] == entries:
            break
        assert summary["position"] < entries
        assert time.monotonic() < deadline, f"the projection is stuck at {summary['position']} of {entries}"
        time.sleep(0.05)
    digest = summary["digest"]
    assert isinstance(digest, str) and len(digest) == 64 and int(digest, 16) >= 0 and digest == digest.lower()
    assert summary["tags"] == len(BAGS) + 2
    assert summary["by_status"] == {"in_custody": 1, "issued": len(BAGS) + 1}
    assert get_ok(live, "/v1/projection").json() == summary  # stable while nothing is written


# ------------------------------------------------------------------------------------------------
# 8. A forked log is detected
# ------------------------------------------------------------------------------------------------


def test_a_forked_checkpoint_cannot_be_proven_consistent(live_ledger) -> None:
    """The log key signs a second tree of the same size (a fork: one entry rewritten); both notes open, but
    no consistency proof from the real log reconciles the fork with any later tree."""
    live = live_ledger
    orgs = small_world(live)
    verifier = log_verifier(live)
    real, _ = publish(live, verifier)
    lines = all_entries(live)

    # the forked history: the last entry's receipt time rewritten, every other entry the same
    last = decode_entry(lines[-1])
    forged_line = encode_entry(last.seq, "2000-01-01T00:00:00.000000Z", last.envelope)
    assert forged_line != lines[-1]
    fork_root = root_from_leaf_hashes([leaf_hash(line) for line in lines[:-1]] + [leaf_hash(forged_line)])
    assert live.log_key is not None
    forged_note = sign_checkpoint(Checkpoint(verifier.name, real.size, fork_root), verifier.name,
                                  live.log_key.private_key)
    forged = open_checkpoint(forged_note, verifier)  # a valid signature by the log key...
    assert forged.size == real.size and forged.root_hash != real.root_hash  # ...on a different tree: a fork

    # two roots for one size are themselves inconsistent
    with pytest.raises(ProofError):
        verify_consistency(real.size, forged.size, real.root_hash, forged.root_hash, [])

    orgs["coop"].dispatch(BAGS[0], TRADER)
    orgs["trader"].receive(BAGS[0], mass_g=9_900)
    later, _ = publish(live, verifier)
    proof = consistency(live, real.size, later.size)
    verify_consistency(real.size, later.size, real.root_hash, later.root_hash, proof)
    with pytest.raises(ProofError):
        verify_consistency(forged.size, later.size, forged.root_hash, later.root_hash, proof)
    # the forged entry has no inclusion proof in the later tree either
    leaf, path = inclusion(live, last.seq, later.size)
    assert leaf == leaf_hash(lines[-1]) != leaf_hash(forged_line)
    verify_inclusion(leaf, last.seq, later.size, path, later.root_hash)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(forged_line), last.seq, later.size, path, later.root_hash)
    # and the served checkpoint list never contains the forged root
    listed = get_ok(live, "/v1/log/checkpoints").json()["checkpoints"]
    assert fork_root.hex() not in {c["root"] for c in listed}
    assert EMPTY_ROOT.hex() not in {c["root"] for c in listed}  # the genesis is always there: never empty
