"""What a due-diligence report costs, in CPU time, in units of one Ed25519 verification measured in the same run.

    .venv/bin/python bench/dd_report_costs.py REPORT.json [--repeat N]

REPORT.json: a saved report (`curl -s http://127.0.0.1:8000/v1/reports/due-diligence/LOT-000003 -o REPORT.json`
after `make serve` and `tagledger demo`). Prints the CPU time (process_time: this process, all threads) of
checking it offline (`verification.dd_report.verify_report`, per signed event), of rendering its HTML (one
language), and of laying that HTML out as a PDF with WeasyPrint, each divided by the CPU time of one Ed25519
verification (`cryptography`) measured just before.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def ed25519_cpu(n: int = 20_000) -> float:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    message = b"x" * 420
    sig = key.sign(message)
    public = key.public_key()
    t0 = time.process_time()
    for _ in range(n):
        public.verify(sig, message)
    return (time.process_time() - t0) / n


def cpu(fn, repeat: int) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("report")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    report = json.loads(Path(args.report).read_text(encoding="utf-8"))

    from api.report_page import render_pdf, render_report
    from verification.dd_report import verify_report

    unit = ed25519_cpu()
    verified = verify_report(report)
    events = verified.events
    t_verify = cpu(lambda: verify_report(report), args.repeat)
    html = render_report(report, "fr")
    t_html = cpu(lambda: render_report(report, "fr"), args.repeat)
    pdf = render_pdf(html)
    t_pdf = cpu(lambda: render_pdf(html), args.repeat)
    with tempfile.NamedTemporaryFile(suffix=".pdf") as handle:
        handle.write(pdf)
        handle.flush()
        info = subprocess.run(["pdfinfo", handle.name], capture_output=True, text=True).stdout
    pages = next((line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")), "?")
    print(f"report {report['tag']}: {events} signed events, {verified.incidents} incidents, "
          f"{len(json.dumps(report)):,} bytes of JSON; PDF {len(pdf):,} bytes, {pages} pages")
    print(f"one Ed25519 verification: {unit * 1e6:.1f} µs CPU")
    print(f"verify-report: {t_verify * 1e3:.1f} ms CPU = {t_verify / unit:,.0f} verifications "
          f"({t_verify / events / unit:.1f} per signed event)")
    print(f"HTML (fr): {t_html * 1e3:.1f} ms CPU = {t_html / unit:,.0f} verifications")
    print(f"PDF: {t_pdf * 1e3:.1f} ms CPU = {t_pdf / unit:,.0f} verifications")
    return 0


if __name__ == "__main__":
    sys.exit(main())
