"""Summarise a py-spy `--format raw` recording (collapsed stacks): where the samples of a thread go.

    py-spy record --format raw --threads -o out.txt -- python ...      # or bench/ingest.py --py-spy PREFIX
    python bench/spy_report.py out.txt                                  # samples per thread
    python bench/spy_report.py out.txt --thread ledger-writer --top 40  # inclusive / self time per function
    python bench/spy_report.py out.txt --thread spawn_main --exclude _find_and_load --requests 20000
        # a server worker's samples without its start-up imports, and each function's µs per request

Inclusive = samples in which the function is on the stack (counted once per sample); self = samples where it is
the innermost frame. Percentages are of the selected thread's samples.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def parse(path: Path):  # noqa: ANN201
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        frames = m["stack"].split(";")
        process = ""
        if frames[0].startswith("process "):
            process = frames[0].split(":", 1)[0] + " "
            frames = frames[1:]
        thread = process + re.sub(r"^thread \(\d+\): ", "", frames[0])
        yield thread, frames[1:], int(m["count"])


def short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    file = m["file"]
    for marker in ("site-packages/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{m['func']} ({file})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file", type=Path)
    p.add_argument("--thread", help="regex on the thread name (e.g. ledger-writer, MainThread, AnyIO)")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--grep", help="only functions matching this regex in the listing")
    p.add_argument("--exclude", help="drop the samples with a frame matching this regex (e.g. start-up imports)")
    p.add_argument("--requests", type=int, help="requests served while recording: adds each function's µs per request")
    p.add_argument("--rate", type=int, default=200, help="py-spy's samples per second (bench/common.py Server: 200)")
    args = p.parse_args()

    per_thread: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    total = 0
    for thread, frames, count in parse(args.file):
        name = re.sub(r"\s*\(idle\)$", "", thread)
        name = re.sub(r"-\d+(\s|$)", r"-N\1", name)
        name = re.sub(r"Thread-\d+", "Thread-N", name)
        per_thread[name] += count
        if args.thread and not re.search(args.thread, thread):
            continue
        if args.exclude and any(re.search(args.exclude, f) for f in frames):
            continue
        total += count
        seen = set()
        for f in frames:
            s = short(f)
            if s not in seen:
                inclusive[s] += count
                seen.add(s)
        if frames:
            self_[short(frames[-1])] += count
    grand = sum(per_thread.values())
    print(f"{grand} samples")
    for name, n in per_thread.most_common(15):
        print(f"  {n / grand:6.1%}  {name}")
    if not args.thread:
        return
    per_request = 1e6 / args.rate / args.requests if args.requests else None
    print(f"\nthread /{args.thread}/: {total} samples"
          + (f" = {total * per_request:,.0f} µs per request" if per_request else "")
          + ("\n\n  incl%   self%  " + ("incl µs/req  " if per_request else "") + "function"))
    rows = sorted(inclusive.items(), key=lambda kv: -kv[1])
    shown = 0
    for func, n in rows:
        if args.grep and not re.search(args.grep, func):
            continue
        us = f"{n * per_request:11.1f}  " if per_request else ""
        print(f"  {n / total:6.1%}  {self_.get(func, 0) / total:6.1%}  {us}{func}")
        shown += 1
        if shown >= args.top:
            break


if __name__ == "__main__":
    main()
