#!/usr/bin/env python3
"""Fail unless the last pytest run really exercised PostgreSQL.

Reads .pytest-pg-report.json (written by tests/conftest.py at the end of a pytest session) and
exits non-zero with a clear message if PostgreSQL was unreachable, no PostgreSQL test was
collected, or any PostgreSQL test was skipped.  Run by `make test` (and so by .ci/run).

Usage: check_pg_report.py [REPORT_PATH]   (default: .pytest-pg-report.json in the repo root)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DEFAULT = Path(__file__).resolve().parent.parent / ".pytest-pg-report.json"


def fail(lines: list[str]) -> int:
    bar = "!" * 78
    print(bar, file=sys.stderr)
    for line in lines:
        print(f"!! {line}", file=sys.stderr)
    print(bar, file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return fail([f"PostgreSQL check FAILED: {path} not found.",
                     "pytest did not finish its session (crash or interrupted?)."])
    except (OSError, ValueError) as exc:
        return fail([f"PostgreSQL check FAILED: cannot read {path}: {exc}"])

    collected = int(report.get("collected", 0))
    skipped = int(report.get("skipped", 0))
    problems: list[str] = []
    if not report.get("reachable", False):
        problems.append(f"PostgreSQL was NOT reachable at {report.get('url')}: "
                        f"{report.get('reason') or 'unknown reason'}")
    if collected == 0:
        problems.append("No PostgreSQL test was collected (none marked `postgres`, "
                        "or all deselected).")
    if skipped:
        problems.append(f"{skipped} of {collected} PostgreSQL test(s) were SKIPPED.")
        for nodeid in report.get("skipped_tests", [])[:10]:
            problems.append(f"  skipped: {nodeid}")

    if problems:
        return fail(["PostgreSQL check FAILED -- the PostgreSQL backend was not fully tested:",
                     *problems])

    print(f"PostgreSQL coverage OK: {collected} PostgreSQL test(s) collected, "
          f"{report.get('passed', 0)} passed, {report.get('failed', 0)} failed, "
          f"{skipped} skipped (server {report.get('server_version') or '?'}).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
