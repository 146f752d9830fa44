"""The auditor's CPU per log entry, in Ed25519 verifications: A/B of two checkouts of `verification/`, one sitting.

Each run is `python -m verification.audit BUNDLE --no-state --vkey @VKEY --workers W --json --no-progress` in its
own process, started in the checkout being measured (so `-m verification.audit` imports that checkout's
`verification/`); its CPU time is the auditor's plus its reaped worker processes' (`wait4`). Right before each
run and right after it, this process measures the CPU time of one Ed25519 verification with `cryptography` (a 420-byte message, CPU
time by `time.process_time`, so a busy machine's waiting is not counted; the mean of the two is used). The figure is

    CPU per entry / CPU per verification  =  cpu_s / entries * verifications_per_cpu_s

a ratio that holds while the shared machine drifts. The runs go A, B, A, B, ... for each `--workers` so that
both checkouts see the same machine; each run's figures and the load average before it are printed and kept, with
the run's peak RSS (of the auditor or of its largest worker: GNU time's %M, from wait4) when /usr/bin/time exists.

    python bench/audit_cpu.py --bundle /tmp/store/bundle.zip --vkey /tmp/store/log.vkey \\
        --tree A=/tmp/verification-of-main --tree B=. --workers 0,2 --repeat 3 --json out.json

A tree is any directory holding a `verification/` package (e.g. `git archive MAIN verification | tar -x -C DIR`).
`--via tagledger` runs `python -m ledger.cli audit ...` instead (the tree then needs `ledger/` too: a whole `git
archive`): what `tagledger audit` runs, with the server's signature checker where the tree has one (libsodium first,
ledger/fast_signatures.py); each row records the `signature_engine` the report names ("-" if it names none).
`--breakdown N --tree NAME=DIR` instead times each part of the replay over the first N entries in this process, with
DIR's `verification/`: reading, check_entry without the signature, the signatures, the inter-process encoding, the
ordered checks and fold.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from reference_speed import verification_cpu_seconds  # bench/, beside this script


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop whatever is left of `proc`'s process group (the auditor, or workers it left behind)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(0.2)  # workers reparented to init: give them the signal's time
    if proc.poll() is None:  # pragma: no cover - killed above
        proc.kill()
        proc.wait()


_TIME = "/usr/bin/time"  # GNU time: the peak RSS of the auditor or of its largest worker (wait4's ru_maxrss)


def run_audit(tree: Path, bundle: str, vkey: str, workers: int, as_of: int | None,
              via: str = "verification") -> dict[str, Any]:
    command = ["-m", "ledger.cli", "audit"] if via == "tagledger" else ["-m", "verification.audit"]
    cmd = [sys.executable, *command, bundle, "--no-state", "--vkey", "@" + vkey,
           "--workers", str(workers), "--json", "--no-progress"]
    if os.path.exists(_TIME):
        cmd = [_TIME, "-f", "peak_rss_kb=%M"] + cmd
    if as_of is not None:
        cmd += ["--as-of", str(as_of)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    t0 = time.perf_counter()
    # its own process group, so that its worker processes go with it whatever fails here or there
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate()
    finally:
        _end_group(proc)
    wall = time.perf_counter() - t0
    # communicate() reaped it; the CPU of the child and its reaped children is in RUSAGE_CHILDREN
    text = err.decode()
    rss = [line for line in text.splitlines() if line.startswith("peak_rss_kb=")]
    peak = int(rss[-1].split("=", 1)[1]) / 1024 if rss else None
    return {"wall_s": wall, "stdout": out.decode(), "stderr": text, "returncode": proc.returncode, "peak_rss_mb": peak}


def breakdown(bundle: str, count: int, tree: Path, rounds: int = 3, checker: str | None = None) -> dict[str, float]:
    """Where one entry's CPU goes, in this process with `tree`'s `verification/`: the first `count` entries of
    `bundle` through each part of the replay alone, in microseconds per entry (the least of `rounds` rounds), and
    the reference verification's, measured between the parts."""
    import marshal

    # first on the path: an editable install of the project would otherwise give its own verification/, whatever
    # the directory this is run from
    sys.path.insert(0, str(tree))
    from verification import entry_checks
    from verification.replay import Replayer
    from verification.sources import open_source

    def cpu(work: Any) -> float:
        best = float("inf")
        for _ in range(rounds):
            t0 = time.process_time()
            work()
            best = min(best, time.process_time() - t0)
        return best / count * 1e6

    source = open_source(bundle)
    parts: dict[str, float] = {"read (zip, split lines)": cpu(lambda: sum(1 for _ in source.entries(0, count)))}
    entries = list(source.entries(0, count))
    signed: list[tuple[bytes, bytes, bytes]] = []

    class Recorder:  # check_entry without the signature check; the signatures kept to be timed apart
        def verify(self, public: bytes, signature: bytes, message: Any) -> bool:
            signed.append((public, signature, bytes(message)))
            return True

    feeder = Replayer(id_key=b"k" * 16)
    checked = []
    for raw in entries:
        item = entry_checks.check_entry(raw, feeder.registry.public_key, feeder.id_key, Recorder())
        feeder.apply(item, raw)
        checked.append(item)
    lookup = feeder.registry.public_key
    recorder = Recorder()
    parts["check_entry without the signature"] = cpu(
        lambda: [entry_checks.check_entry(raw, lookup, b"k" * 16, recorder) for raw in entries])
    verifier = entry_checks.signature_checker(checker) if checker else entry_checks.SignatureChecker()
    print(f"signatures: {getattr(verifier, 'engine', 'openssl')}")
    rates = [1 / verification_cpu_seconds()]
    parts["Ed25519 verify of the entries"] = cpu(lambda: [verifier.verify(*item) for item in signed[:count]])
    rates.append(1 / verification_cpu_seconds())
    plain = [tuple(item) for item in checked]
    parts["worker -> auditor (marshal both ways)"] = cpu(
        lambda: [marshal.loads(marshal.dumps(plain[i:i + 1000])) for i in range(0, count, 1000)])

    def fold() -> None:
        replayer = Replayer(id_key=b"k" * 16)
        for item, raw in zip(checked, entries):
            replayer.apply(item, raw)
        replayer.tags.close()

    parts["ordered checks and fold (Replayer.apply)"] = cpu(fold)
    rates.append(1 / verification_cpu_seconds())
    reference = 1e6 / (sum(rates) / len(rates))
    print(f"verification/ of {Path(entry_checks.__file__).parent.parent}")
    print(f"breakdown over the first {count:,} entries, us per entry (reference verification {reference:.1f} us, "
          f"{[round(r) for r in rates]}/CPU-s):")
    for name, us in parts.items():
        print(f"  {name:45s} {us:8.1f} us  {us / reference:6.3f} verifications")
    total = sum(parts.values())
    print(f"  {'sum':45s} {total:8.1f} us  {total / reference:6.3f} verifications")
    return {"reference_us": reference, **parts}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    import resource

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--vkey", required=True, help="file holding the log's verifier key")
    p.add_argument("--tree", action="append", required=True, help="NAME=DIR holding a verification/ package")
    p.add_argument("--workers", default="0,2")
    p.add_argument("--as-of", type=int, default=None)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", default=None)
    p.add_argument("--via", choices=["verification", "tagledger"], default="verification",
                   help="run `python -m verification.audit` (default) or `python -m ledger.cli audit` in each tree")
    p.add_argument("--checker", default=None,
                   help="with --breakdown: the signature checker factory (e.g. ledger.fast_signatures:SignatureChecker)")
    p.add_argument("--breakdown", type=int, default=0,
                   help="instead: time the parts of the replay over the first N entries, in this process, with the "
                        "one --tree's verification/")
    args = p.parse_args(argv)
    trees = [(name, Path(path).resolve()) for name, path in (t.split("=", 1) for t in args.tree)]
    if args.breakdown:
        if len(trees) != 1:
            p.error("--breakdown measures one --tree")
        breakdown(args.bundle, args.breakdown, trees[0][1], checker=args.checker)
        return []
    rows: list[dict[str, Any]] = []
    for k in range(args.repeat):
        for w in [int(x) for x in args.workers.split(",") if x]:
            for name, tree in trees:
                load = os.getloadavg()[0]
                rate_before = 1 / verification_cpu_seconds()
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                m = run_audit(tree, args.bundle, args.vkey, w, args.as_of, args.via)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                rate_after = 1 / verification_cpu_seconds()
                rate = (rate_before + rate_after) / 2
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                try:
                    report = json.loads(m["stdout"])
                except ValueError:
                    report = {"ok": False, "failure": m["stderr"][-400:]}
                size = report.get("size") or 0
                row = {"tree": name, "workers": w, "repeat": k, "entries": size, "ok": bool(report.get("ok")),
                       "wall_s": round(m["wall_s"], 2), "cpu_s": round(cpu, 2),
                       "cpu_us_per_entry": round(cpu / size * 1e6, 1) if size else None,
                       "verify_per_cpu_s": round(rate), "verify_per_cpu_s_before_after": [round(rate_before), round(rate_after)],
                       "load_1m_before": load,
                       "peak_rss_mb": None if m["peak_rss_mb"] is None else round(m["peak_rss_mb"], 1),
                       "ratio": round(cpu / size * rate, 3) if size else None,
                       "failure": report.get("failure"), "engine": report.get("signature_engine") or "-"}
                rows.append(row)
                print(f"{name} workers={w} #{k}: {size:,} entries ok={row['ok']} wall {row['wall_s']} s "
                      f"CPU {row['cpu_s']} s = {row['cpu_us_per_entry']} us/entry; reference {row['verify_per_cpu_s']:,}"
                      f"/CPU-s -> {row['ratio']} verifications per entry (load {load:.2f}; "
                      f"peak RSS {row['peak_rss_mb']} MB; signatures: {row['engine']})",
                      flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
