"""`tagledger export`: a self-contained audit bundle (docs/protocol.md section 12, `tagledger/bundle/v1`).

A ZIP file holding the log's entries byte for byte, the stored leaf hashes, the signed checkpoint that covers
exactly those entries, the keys, and the server's custody projection digest at that point, so an auditor can
run `tagledger audit BUNDLE` (or `python -m verification.audit BUNDLE`) offline, trusting nothing in it but
the log key they pinned.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ledger.service import Ledger
from verification.canonical import jcs
from verification.encoding import b64url_encode

BUNDLE_FORMAT = "tagledger/bundle/v1"
MANIFEST, CHECKPOINT, ENTRIES, LEAF_HASHES = "manifest.json", "checkpoint.txt", "entries.ndjson", "leaf-hashes.bin"
ATTEMPTS = "refused-attempts.ndjson"  # since protocol 1.7
PAGE = 5000


@dataclass(frozen=True)
class ExportSummary:
    entries: int
    checkpoint_size: int
    projection_position: int | None


def export_bundle(ledger: Ledger, path: Path, *, progress: Callable[[int, int], None] | None = None) -> ExportSummary:
    projection = ledger.start_projection(follow=False)
    projection.catch_up()
    if ledger.signer is not None:
        ledger.publish_checkpoint()
    checkpoint = ledger.store.latest_checkpoint()
    if checkpoint is None:
        raise RuntimeError("no signed checkpoint yet: start the service (it signs one) or export from its home")
    summary = projection.summary()
    size = checkpoint.size
    identity = ledger.identity()
    params = ledger.registry().ledger
    manifest = {
        "format": BUNDLE_FORMAT,
        "origin": identity.origin,
        "vkey": identity.vkey,
        "log_public_key": b64url_encode(identity.public_key_raw),
        "root_key": params.root_key if params else None,
        "entries": size,
        "exported_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        # the server's claim, which the auditor's replay must reproduce; absent if the projection was elsewhere
        "projection": {k: summary[k] for k in ("position", "digest", "tags", "by_status")}
        if summary["position"] == size else None,
    }
    tmp = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as bundle:
        bundle.writestr(MANIFEST, json.dumps(manifest, indent=2) + "\n")
        bundle.writestr(CHECKPOINT, checkpoint.note)
        with bundle.open(ENTRIES, "w", force_zip64=True) as out:
            for start in range(0, size, PAGE):
                for event in ledger.store.read_range(start, min(size, start + PAGE)):
                    out.write(event.data + b"\n")
                if progress is not None:
                    progress(min(size, start + PAGE), size)
        with bundle.open(LEAF_HASHES, "w", force_zip64=True) as out:
            for start in range(0, size, PAGE * 10):
                out.write(b"".join(ledger.store.tree.leaf_hashes(start, min(size, start + PAGE * 10))))  # type: ignore[attr-defined]
        with bundle.open(ATTEMPTS, "w") as out:  # the evidence of reused tags, with its standing (protocol 9.1)
            after = 0
            while page := ledger.refused_attempts(after, PAGE):
                for number, judged in page:
                    if judged.attempt.log_size <= size:
                        out.write(jcs({"number": number, **judged.to_json()}) + b"\n")
                after = page[-1][0]
    tmp.replace(path)
    return ExportSummary(size, size, manifest["projection"]["position"] if manifest["projection"] else None)
