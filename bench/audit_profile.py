"""Where the auditor's CPU goes, by function group, in the auditor process and in its workers apart.

One audit of BUNDLE with DIR's `verification/`, in this process (`verification.audit.main`, `--workers W`): the
CPU time of this process (the auditor: reading, sending chunks, taking results back, the ordered checks and the
fold, the scratch SQLite file, the digest) and of its reaped worker processes (`getrusage` SELF and CHILDREN),
each per entry and over the CPU time of one Ed25519 verification measured right before and after (as
bench/audit_cpu.py does), and the garbage collector's collections in this process.

    python bench/audit_profile.py --bundle B.zip --vkey log.vkey --tree B=. --workers 2
    python bench/audit_profile.py ... --py-spy out.raw     # the same run sampled by py-spy, then grouped

With `--py-spy FILE` the run is sampled by `py-spy record --subprocesses -f raw` (py-spy on PATH or beside
this Python) and each sample is put in the group of its innermost frame that matches a group (`MAIN`, `WORKER`
below); a group's share of its process's samples times that process's CPU per entry gives its cost. py-spy
counts a thread blocked in a wait or a pipe write as busy: those samples are shown as "(waiting)" and left out
of the shares. `--groups FILE` only groups an existing raw file.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_speed import verification_cpu_seconds  # noqa: E402  (bench/, beside this script)

WAITING = "(waiting: blocked in a wait, a poll or a pipe write)"
HARNESS = "(this script: the reference verifications)"
_WAIT = (r"Condition\.wait|select \(|_send_bytes|Connection\._send |_poll \(|wait \(multiprocessing/connection",
         WAITING)
WORKER = [
    _WAIT,
    (r"SignatureChecker\.verify", "Ed25519 verification (cryptography)"),
    (r"sorted_compact", "canonical check: the C encoder's text compared"),
    (r"event_data\.py", "data checks (check_event_shape)"),
    (r"_time_ok|_date_ok|_signature_of", "times and signature text"),
    (r"_integer|_decode_fast|_decode \(|decode_entry", "JSON scan (C) and envelope field checks"),
    (r"check_entry", "hashes (SHA-256 x2, BLAKE2b), the result tuple"),
    (r"marshal|send_bytes", "results: marshal and pipe"),
    (r"queues\.py|connection\.py|reduction", "tasks: queue get and unpickle"),
    (r"_work ", "worker loop"),
    (r"<module>|_bootstrap|import|spawn|_main|prepare", "start-up and imports"),
]
MAIN = [
    (r"verification_cpu_seconds", HARNESS),
    _WAIT,
    (r"custody_digest|state_rows|Replayer\.digest|snapshot|_merged|_newest", "custody digest (at the end)"),
    (r"spill_db|executemany|write_many|flush \(verification/tag_store", "scratch SQLite file (SQL, pages)"),
    (r"TagState\.canonical|from_record", "state records (written, read back)"),
    (r"event_ids\.py", "event ids (bitmap, dict)"),
    (r"tag_store\.py", "tag cache (LRU, settle)"),
    (r"merkle\.py", "Merkle frontier"),
    (r"custody_rules|registry_replay|risk_replay|_check_streams|_check_time|Replayer\._check", "ordered checks"),
    (r"apply_event|Replayer\._fold|Replayer\.apply", "custody fold"),
    (r"receive|marshal|recv_bytes|_recv|poll", "results: pipe and unmarshal"),
    (r"_feed|put \(|Queue|_may_register_keys|_key_hints|dumps|notify", "tasks: key search, queue put, pickle"),
    (r"sources\.py|zipfile|zlib|_with_root_at", "reading the bundle (zip, lines)"),
    (r"_run \(", "chunk loop"),
    (r"<module>|import|_bootstrap|Process\.start|popen|spawn|Thread\.start", "start-up, imports, workers started"),
]


def group(raw: Path) -> dict[str, Counter[str]]:
    """Samples per group, for "auditor" (stacks with one process frame) and "workers" (two)."""
    groups: dict[str, Counter[str]] = {"auditor": Counter(), "workers": Counter()}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        side = "workers" if sum(frame.startswith("process ") for frame in frames) > 1 else "auditor"
        rules = WORKER if side == "workers" else MAIN
        name = "other"
        for frame in reversed(frames):
            hit = next((category for pattern, category in rules if re.search(pattern, frame)), None)
            if hit is not None:
                name = hit
                break
        groups[side][name] += int(count)
    return groups


def run(tree: Path, bundle: str, vkey: str, workers: int) -> dict[str, Any]:
    sys.path.insert(0, str(tree))
    rate_before = 1 / verification_cpu_seconds()
    from verification import audit

    collections_before = [s["collections"] for s in gc.get_stats()]
    self0, children0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        audit.main([bundle, "--no-state", "--vkey", "@" + vkey, "--workers", str(workers), "--json", "--no-progress"])
    wall = time.perf_counter() - t0
    self1, children1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    collections = [s["collections"] - c for s, c in zip(gc.get_stats(), collections_before)]
    reference_us = 1e6 / ((rate_before + 1 / verification_cpu_seconds()) / 2)
    report = json.loads(out.getvalue())
    size = report["size"]

    def per_entry(a: Any, b: Any) -> float:
        return ((b.ru_utime - a.ru_utime) + (b.ru_stime - a.ru_stime)) / size * 1e6

    auditor, worker = per_entry(self0, self1), per_entry(children0, children1)
    return {"tree": str(tree), "verification": str(Path(audit.__file__).parent), "ok": report["ok"], "entries": size,
            "workers": workers, "wall_s": round(wall, 1), "reference_us": round(reference_us, 1),
            "auditor_us": round(auditor, 1), "workers_us": round(worker, 1),
            "auditor_ratio": round(auditor / reference_us, 3), "workers_ratio": round(worker / reference_us, 3),
            "total_ratio": round((auditor + worker) / reference_us, 3),
            "gc_collections_auditor": collections, "load_1m": os.getloadavg()[0],
            "peak_rss_mb_auditor": self1.ru_maxrss // 1024, "peak_rss_mb_largest_worker": children1.ru_maxrss // 1024}


def show(groups: dict[str, Counter[str]], figures: dict[str, Any] | None) -> None:
    for side, counts in groups.items():
        busy = {name: n for name, n in counts.items() if not name.startswith("(")}
        total = sum(busy.values())
        us = None if figures is None else figures["auditor_us" if side == "auditor" else "workers_us"]
        ref = None if figures is None else figures["reference_us"]
        print(f"{side}: {total} busy samples" + ("" if us is None else f", {us} us per entry"))
        for name, n in sorted(busy.items(), key=lambda item: -item[1]):
            share = n / total
            cost = "" if us is None else f"{share * us:7.1f} us  {share * us / ref:6.3f} verifications"
            print(f"  {name:52s} {share * 100:5.1f} %  {cost}")
        for name, n in counts.items():
            if name.startswith("("):
                print(f"  {name:52s} {n} samples, left out")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle")
    p.add_argument("--vkey")
    p.add_argument("--tree", help="NAME=DIR holding a verification/ package")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--py-spy", dest="py_spy", help="sample the run with py-spy into this raw file, then group it")
    p.add_argument("--groups", help="only group this py-spy raw file")
    p.add_argument("--figures", help="with --groups: a JSON file of this script's figures, to price the groups")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    if args.groups:
        figures = json.loads(Path(args.figures).read_text()) if args.figures else None
        show(group(Path(args.groups)), figures)
        return
    if not (args.bundle and args.vkey and args.tree):
        p.error("--bundle, --vkey and --tree are needed")
    tree = Path(args.tree.split("=", 1)[-1]).resolve()
    if args.py_spy:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        figures_file = Path(args.json or args.py_spy + ".json")
        cmd = [spy, "record", "--subprocesses", "-r", "200", "-f", "raw", "-o", args.py_spy, "--",
               sys.executable, __file__, "--bundle", args.bundle, "--vkey", args.vkey, "--tree", str(tree),
               "--workers", str(args.workers), "--json", str(figures_file)]
        subprocess.run(cmd, check=True)
        figures = json.loads(figures_file.read_text())
        print(json.dumps(figures))
        show(group(Path(args.py_spy)), figures)
        return
    figures = run(tree, args.bundle, args.vkey, args.workers)
    print(json.dumps(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
