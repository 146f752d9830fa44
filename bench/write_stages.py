"""Where a write's CPU goes, stage by stage, in Ed25519 verifications (issue 13), in this process.

For the workload of bench/ingest.py (pre-signed; 6,000 events by default), the CPU time per event of: the strict
JSON reader (`parse_json`), `prepare` (structure, payload schema, canonical bytes, hash), `submit_many` (the whole
write path in process: prepare, the registry, the streams' history, signature, rules, insert, Merkle tree), then
each projection catching up on the whole log (custody, flags), each divided by one verification's CPU time
measured in this process just before.

    .venv/bin/python bench/write_stages.py [sqlite|postgres] [EVENTS] [FOLLOW]
    bench/frozen.sh --commit main -- bench/write_stages.py postgres      # the same stages on another commit

With FOLLOW (e.g. 100), the projections instead catch up after every FOLLOW events written, as `serve`'s
followers do with what gathered since their last wake-up (small pages), and only their CPU is counted.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from reference_speed import verification_cpu_seconds  # noqa: E402

from ledger.service import Ledger  # noqa: E402
from ledger.writer import Receipt, prepare  # noqa: E402
from verification.canonical import parse_json  # noqa: E402


def main() -> None:
    backend = sys.argv[1] if len(sys.argv) > 1 else "postgres"
    events = int(sys.argv[2]) if len(sys.argv) > 2 else 6000
    follow = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    wl = common.build_workload(groups=common.groups_for_events(events, 10), bags_per_lot=10, issue_chunk=10_000)
    ev = wl.ordered()
    n = len(ev)
    reference = verification_cpu_seconds(rounds=5)

    def stage(label: str, work) -> None:  # noqa: ANN001
        c = time.process_time()
        work()
        c = time.process_time() - c
        print(f"{label:22} {c / n * 1e6:7.1f} us/event  {c / n / reference:5.2f} verifications", flush=True)

    print(f"code: {common.ROOT}  store: {backend}  {n} events  1 verification = {reference * 1e6:.0f} us")
    stage("parse_json (strict)", lambda: [parse_json(e.raw) for e in ev])
    objs = [parse_json(e.raw) for e in ev]
    stage("prepare", lambda: [prepare(o) for o in objs])
    with common.fresh_store(backend, "stages") as url:
        ledger = Ledger.open(url)
        try:
            ledger.submit_many([e.envelope for e in wl.setup])

            def submit() -> None:
                assert all(isinstance(r, Receipt) for r in ledger.submit_many(objs))

            if follow:
                followed(ledger, objs, follow, reference)
                return
            stage("submit_many", submit)
            ledger.start_projection(follow=False)
            stage("custody catch-up", lambda: ledger.projection.catch_up())
            stage("flags catch-up", lambda: ledger.flags.catch_up())
        finally:
            ledger.close()


def followed(ledger: Ledger, objs: list, page: int, reference: float) -> None:
    """Write `objs` `page` at a time, each projection catching up after each page; print their CPU per event."""
    ledger.start_projection(follow=False)
    projections = {"custody": ledger.projection, "flags": ledger.flags}
    for projection in projections.values():
        projection.catch_up()
    spent = dict.fromkeys(projections, 0.0)
    for start in range(0, len(objs), page):
        assert all(isinstance(r, Receipt) for r in ledger.submit_many(objs[start : start + page]))
        for name, projection in projections.items():
            c = time.process_time()
            projection.catch_up()
            spent[name] += time.process_time() - c
    for name, c in spent.items():
        label = f"{name} follow ({page})"
        print(f"{label:22} {c / len(objs) * 1e6:7.1f} us/event  {c / len(objs) / reference:5.2f} verifications")


if __name__ == "__main__":
    main()
