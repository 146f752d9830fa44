"""Restart benchmark: how long `tagledger serve` takes from its start to its first successful `GET /readyz`, on a
store of realistic size, after each way a service can stop.

    python bench/restart.py                                  # 30,000 entries, both stores, 3 rounds of each stop
    python bench/restart.py --entries 10000 --backends sqlite --rounds 1

For each store: the workload of bench/common.py is imported in-process (all but a few batches), the log key is put
in a fresh home, then `tagledger serve` is started (`first`: the projections are built from entry #0) and, round
after round, a batch of new events is written over HTTP (all must be 201), the service is stopped one way and
started again at once:

  sigterm           SIGTERM to the supervisor (what a service manager sends), wait for it to exit (timed too)
  kill9-supervisor  SIGKILL to the supervisor alone (its workers must die with it), no waiting
  kill9-group       SIGKILL to every process of the service

"ready" is the first 200 of `GET /readyz` (on code without /readyz: `GET /healthz`), polled every 50 ms, once the
new supervisor has a worker (an orphan of the previous service may answer too: that is not a restart). The CPU
column is the CPU time the service's processes used until then, also stated in Ed25519 verifications
(`cryptography`) measured in the same run. Every serve process is killed when the script ends, however it ends.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import ROOT, Workload, build_workload, fresh_store, free_port, groups_for_events, print_table  # noqa: E402

from ledger.config import Settings  # noqa: E402
from ledger.keys import KeyPair  # noqa: E402
from ledger.service import Ledger  # noqa: E402
from ledger.writer import Receipt  # noqa: E402

STOPS = ("sigterm", "kill9-supervisor", "kill9-group")
READY_TIMEOUT = 120.0
_TICK = os.sysconf("SC_CLK_TCK")


def _session(sid: int) -> list[int]:
    """Live (non-zombie) processes of session `sid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


class Serve:
    """`tagledger serve` in its own session; `kill_all()` ends every process of that session."""

    def __init__(self, home: Path, url: str, port: int, log: Path):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAGLEDGER_")}
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "--home", str(home), "--db", url, "serve", "--port", str(port),
             "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        self.sid = self.proc.pid

    def kill_all(self) -> None:
        for pid in _session(self.sid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def _wait_ready(serve: Serve, base: str, probe: list[str]) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + READY_TIMEOUT
    with httpx.Client(base_url=base, timeout=2, trust_env=False) as http:
        while time.monotonic() < deadline:
            if serve.proc.poll() is not None:
                return {"ok": False, "error": f"serve exited with {serve.proc.returncode}"}
            try:
                answer = http.get(probe[0])
                if answer.status_code == 404 and probe[0] == "/readyz":
                    probe[0] = "/healthz"  # code from before /readyz
                    continue
                # an answer from this service, not from a worker the previous one left behind: this service's
                # supervisor must have started its worker
                if answer.status_code == 200 and len(_session(serve.sid)) >= 2:
                    return {"ok": True, "seconds": time.perf_counter() - serve.started,
                            "cpu": _cpu(_session(serve.sid))}
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    return {"ok": False, "error": f"not ready in {READY_TIMEOUT:.0f} s"}


def _stop(serve: Serve, how: str) -> float | None:
    """Stop `serve`; for SIGTERM, return how long the supervisor took to exit (its drain)."""
    if how == "sigterm":
        started = time.perf_counter()
        serve.proc.send_signal(signal.SIGTERM)
        serve.proc.wait(timeout=120)
        return time.perf_counter() - started
    elif how == "kill9-supervisor":
        serve.proc.send_signal(signal.SIGKILL)
        serve.proc.wait(timeout=10)
    else:
        for pid in _session(serve.sid):
            os.kill(pid, signal.SIGKILL)
        serve.proc.wait(timeout=10)
    return None


def _import(url: str, wl: Workload, keep: int) -> list[list[dict[str, Any]]]:
    """Import everything but the last `keep` groups in-process; return those groups' envelopes."""
    events = [*wl.setup, *wl.issue, *(e for g in wl.groups[: len(wl.groups) - keep] for e in g)]
    ledger = Ledger.open(url)
    try:
        results = ledger.submit_many([e.envelope for e in events])
    finally:
        ledger.close()
    bad = [r for r in results if not isinstance(r, Receipt)]
    if bad:
        raise RuntimeError(f"import refused: {bad[0]}")
    return [[e.envelope for e in g] for g in wl.groups[len(wl.groups) - keep:]]


def run_backend(backend: str, entries: int, rounds: int, log: Path) -> list[dict[str, Any]]:
    import httpx

    rows: list[dict[str, Any]] = []
    log_key = KeyPair.generate()
    wl = build_workload(groups=groups_for_events(entries, 10), log_key=log_key)
    keep = rounds * len(STOPS)
    with fresh_store(backend, "restart") as url, tempfile.TemporaryDirectory(prefix="tl_bench_restart_") as tmp:
        home = Path(tmp) / "home"
        t0 = time.perf_counter()
        pending = _import(url, wl, keep)
        (home / "keys").mkdir(parents=True)
        log_key.save(home / "keys" / "log.pem")
        Settings(home=home, db=url, operator="itsci").save()
        total = wl.timed_events + len(wl.setup) - sum(len(g) for g in pending)
        print(f"[{backend}] imported {total:,} entries in {time.perf_counter() - t0:.0f} s", flush=True)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        probe = ["/readyz"]
        serves: list[Serve] = []
        try:
            serve = Serve(home, url, port, log)
            serves.append(serve)
            ready = _wait_ready(serve, base, probe)
            rows.append({"backend": backend, "stop": "first (projections from #0)", **ready})
            if not ready["ok"]:
                return rows
            for r in range(rounds):
                for how in STOPS:
                    batch = pending.pop()
                    answer = httpx.post(base + "/v1/events/batch", json=batch, timeout=120, trust_env=False)
                    codes = ({item["status"] for item in answer.json()["results"]} if answer.is_success
                             else {answer.status_code})
                    if codes != {201}:
                        raise RuntimeError(f"writing a batch before {how} answered {codes}")
                    stopped = _stop(serve, how)
                    serve = Serve(home, url, port, log)
                    serves.append(serve)
                    ready = _wait_ready(serve, base, probe)
                    rows.append({"backend": backend, "stop": how, "round": r + 1, "stop_s": stopped, **ready})
                    print(f"[{backend}] round {r + 1} {how}: {ready}", flush=True)
                    for old in serves[:-1]:  # whatever the previous service left behind (orphans) goes now
                        old.kill_all()
                    if not ready["ok"]:
                        serve.kill_all()
                        serve = Serve(home, url, port, log)  # start clean for the next round
                        serves.append(serve)
                        if not _wait_ready(serve, base, probe)["ok"]:
                            return rows
        finally:
            for s in serves:
                s.kill_all()
    return rows


def summarise(rows: list[dict[str, Any]], rate: float) -> list[dict[str, Any]]:
    out = []
    for (backend, stop) in dict.fromkeys((r["backend"], r["stop"]) for r in rows):
        mine = [r for r in rows if (r["backend"], r["stop"]) == (backend, stop)]
        ok = [r for r in mine if r["ok"]]
        seconds = [r["seconds"] for r in ok]
        cpu = [r["cpu"] for r in ok]
        stops = [r["stop_s"] for r in mine if r.get("stop_s") is not None]
        out.append({
            "backend": backend, "stop": stop, "runs": len(mine), "failed": len(mine) - len(ok),
            "median_s": statistics.median(seconds) if seconds else None,
            "min_s": min(seconds) if seconds else None, "max_s": max(seconds) if seconds else None,
            "cpu_s": statistics.median(cpu) if cpu else None,
            "cpu_in_verifications": round(statistics.median(cpu) * rate) if cpu else None,
            "stop_s": statistics.median(stops) if stops else None,
            "errors": "; ".join(sorted({r["error"] for r in mine if not r["ok"]})) or None,
        })
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=30_000)
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--log", default=None, help="serve's output (default: a temporary file, printed on failure)")
    p.add_argument("--json", nargs="?", const="", help="write the results JSON (default bench/results/restart-*.json)")
    args = p.parse_args(argv)
    # SIGTERM (timeout, a stopped job) ends the script through its `finally` blocks: no serve or store left behind
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    log = Path(args.log) if args.log else Path(tempfile.mkstemp(prefix="tl_bench_restart_", suffix=".log")[1])
    load = os.getloadavg()
    rate = common.ed25519_verify_rate()
    print(f"reference: {rate:,.0f} Ed25519 verifications/s on one core (cryptography); load average {load[0]:.1f}",
          flush=True)
    rows: list[dict[str, Any]] = []
    for backend in args.backends.split(","):
        rows += run_backend(backend, args.entries, args.rounds, log)
    rate_after = common.ed25519_verify_rate()
    print(f"reference after: {rate_after:,.0f} verifications/s; serve's output: {log}")
    table = summarise(rows, (rate + rate_after) / 2)
    print_table(table, [("backend", "store"), ("stop", "restart after"), ("runs", "runs"), ("failed", "failed"),
                        ("median_s", "median s"), ("min_s", "min s"), ("max_s", "max s"), ("cpu_s", "CPU s"),
                        ("cpu_in_verifications", "CPU in verifications"), ("stop_s", "SIGTERM to exit, s"),
                        ("errors", "errors")])
    if args.json is not None:
        print(common.write_json("restart", {"args": vars(args), "machine": common.machine_info(), "load_before": load,
                                            "reference": [rate, rate_after], "rows": rows, "table": table},
                                path=args.json or None))


if __name__ == "__main__":
    main()
