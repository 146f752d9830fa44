"""The auditor's CPU per log entry, in Ed25519 verifications: A/B of two checkouts of `verification/`, one sitting.

Each run is `python -m verification.audit BUNDLE --no-state --vkey @VKEY --workers W --json --no-progress` in its
own process, started in the checkout being measured (so `-m verification.audit` imports that checkout's
`verification/`); its CPU time is the auditor's plus its reaped worker processes' (`wait4`). Right before each
run, this process measures the CPU time of one Ed25519 verification with `cryptography` (a 420-byte message, CPU
time by `time.process_time`, so a busy machine's waiting is not counted). The figure is

    CPU per entry / CPU per verification  =  cpu_s / entries * verifications_per_cpu_s

a ratio that holds while the shared machine drifts. The runs go A, B, A, B, ... for each `--workers` so that
both checkouts see the same machine; each run's figures and the load average before it are printed and kept.

    python bench/audit_cpu.py --bundle /tmp/store/bundle.zip --vkey /tmp/store/log.vkey \\
        --tree A=/tmp/verification-of-main --tree B=. --workers 0,2 --repeat 3 --json out.json

A tree is any directory holding a `verification/` package (e.g. `git archive MAIN verification | tar -x -C DIR`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def verify_cpu_rate(seconds: float = 1.0) -> float:
    """Ed25519 verifications per CPU-second of this process (cryptography / OpenSSL)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    message = b"x" * 420
    sig = key.sign(message)
    public = key.public_key()
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds:
        for _ in range(200):
            public.verify(sig, message)
        n += 200
    return n / (time.process_time() - t0)


def run_audit(tree: Path, bundle: str, vkey: str, workers: int, as_of: int | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "verification.audit", bundle, "--no-state", "--vkey", "@" + vkey,
           "--workers", str(workers), "--json", "--no-progress"]
    if as_of is not None:
        cmd += ["--as-of", str(as_of)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wall = time.perf_counter() - t0
    # communicate() reaped it; the CPU of the child and its reaped children is in RUSAGE_CHILDREN
    return {"wall_s": wall, "stdout": out.decode(), "stderr": err.decode(), "returncode": proc.returncode}


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
    args = p.parse_args(argv)
    trees = [(name, Path(path).resolve()) for name, path in (t.split("=", 1) for t in args.tree)]
    rows: list[dict[str, Any]] = []
    for k in range(args.repeat):
        for w in [int(x) for x in args.workers.split(",") if x]:
            for name, tree in trees:
                load = os.getloadavg()[0]
                rate = verify_cpu_rate()
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                m = run_audit(tree, args.bundle, args.vkey, w, args.as_of)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                try:
                    report = json.loads(m["stdout"])
                except ValueError:
                    report = {"ok": False, "failure": m["stderr"][-400:]}
                size = report.get("size") or 0
                row = {"tree": name, "workers": w, "repeat": k, "entries": size, "ok": bool(report.get("ok")),
                       "wall_s": round(m["wall_s"], 2), "cpu_s": round(cpu, 2),
                       "cpu_us_per_entry": round(cpu / size * 1e6, 1) if size else None,
                       "verify_per_cpu_s": round(rate), "load_1m_before": load,
                       "ratio": round(cpu / size * rate, 3) if size else None,
                       "failure": report.get("failure")}
                rows.append(row)
                print(f"{name} workers={w} #{k}: {size:,} entries ok={row['ok']} wall {row['wall_s']} s "
                      f"CPU {row['cpu_s']} s = {row['cpu_us_per_entry']} us/entry; reference {row['verify_per_cpu_s']:,}"
                      f"/CPU-s -> {row['ratio']} verifications per entry (load {load:.2f})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
