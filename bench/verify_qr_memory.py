"""Peak memory of the server while it answers POST /v1/verify/qr: a decompression bomb, a 10 MB photo, a flood.

The server is a separate process (uvicorn, one worker, a fresh SQLite ledger in a temporary directory); after
each step this script reads the server's own high-water mark of resident memory (VmHWM in /proc/<pid>/status,
which, unlike ru_maxrss, does not start at the forking parent's peak) and its current RSS.

Steps: idle; a 2.5-gigapixel PNG bomb (1.4 MB); a 9.5 MB progressive 24 MP JPEG (the costliest kind of photo
to decode: libjpeg holds all its DCT coefficients); the same as a baseline JPEG; 16 of the progressive ones at
once (at most 2 decoded at a time, at most 8 held; the rest are turned away with 503).

    .venv/bin/python bench/verify_qr_memory.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

SERVER = """
import sys
sys.path.insert(0, {root!r})
import uvicorn
from api.app import create_app
from ledger.genesis import GenesisKeys, create_ledger
from ledger.keys import KeyPair
from ledger.service import Ledger
ledger = Ledger.open("sqlite:///{db}")
root, log_key = KeyPair.generate(), KeyPair.generate()
create_ledger(ledger, name="bench", operator="itsci", operator_name="ITSCI", country="CD",
              log_key_name="bench.local/log", keys=GenesisKeys(root, log_key))
open({keyfile!r}, "wb").write(root.private_key.private_bytes_raw())
uvicorn.run(create_app(ledger, log_key=log_key), host="127.0.0.1", port={port}, log_level="warning")
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _memory(pid: int) -> dict[str, float]:
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmHWM:", "VmRSS:")):
                key, kib = line.split()[:2]
                values[key.rstrip(":")] = int(kib) / 1024
    return {"peak_mib": round(values["VmHWM"], 1), "rss_mib": round(values["VmRSS"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests import photos
    from verification.encoding import key_id
    from verification.label import format_label_url, sign_label

    home = Path(tempfile.mkdtemp(prefix="tl_verify_qr_"))
    port = _free_port()
    keyfile = str(home / "root.key")
    code = SERVER.format(root=str(ROOT), db=str(home / "ledger.db"), keyfile=keyfile, port=port)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    rows: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        root = Ed25519PrivateKey.from_private_bytes(Path(keyfile).read_bytes())
        kid = key_id(root.public_key().public_bytes_raw())
        url = format_label_url("http://127.0.0.1:8000", "KAL-000001", sign_label(root, kid, "bench.local/log",
                                                                                 "KAL-000001"))
        scene = photos.in_scene(photos.qr_image(url), size=(6000, 4000), at=(3000, 1500), qr_side=900)
        progressive = photos.jpeg(scene, 98, progressive=True)
        baseline = photos.jpeg(scene, 97)
        bomb = photos.bomb_png()
        client = httpx.Client(base_url=base, timeout=120, trust_env=False)

        def post(data: bytes, media: str) -> httpx.Response:
            return client.post("/v1/verify/qr", content=data, headers={"content-type": media})

        def step(name: str, statuses: list[int], seconds: float, size: int) -> None:
            rows.append({"step": name, "bytes": size, "statuses": statuses, "seconds": round(seconds, 2),
                         **_memory(proc.pid)})

        step("idle", [], 0.0, 0)
        for name, data, media in (("PNG bomb 50,000 x 50,000", bomb, "image/png"),
                                  ("progressive JPEG 6000 x 4000", progressive, "image/jpeg"),
                                  ("baseline JPEG 6000 x 4000", baseline, "image/jpeg")):
            started = time.monotonic()
            response = post(data, media)
            step(name, [response.status_code], time.monotonic() - started, len(data))

        statuses: list[int] = []
        lock = threading.Lock()

        def one() -> None:
            with httpx.Client(base_url=base, timeout=120, trust_env=False) as own:
                status = own.post("/v1/verify/qr", content=progressive,
                                  headers={"content-type": "image/jpeg"}).status_code
            with lock:
                statuses.append(status)

        started = time.monotonic()
        threads = [threading.Thread(target=one) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        step("16 progressive JPEGs at once", sorted(statuses), time.monotonic() - started, 16 * len(progressive))
        client.close()
    finally:  # the server's whole process group, SIGKILL after a grace period (bench/common.py)
        from common import stop_process_group

        stop_process_group(proc, grace=10)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'step':32s} {'MB sent':>8s} {'seconds':>8s} {'peak MiB':>9s} {'RSS MiB':>8s}  statuses")
    for row in rows:
        print(f"{row['step']:32s} {row['bytes'] / 1e6:8.1f} {row['seconds']:8.2f} {row['peak_mib']:9.1f} "
              f"{row['rss_mib']:8.1f}  {row['statuses']}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
