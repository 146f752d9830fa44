"""Read rate of `ledger.photo.scan_photo` on realistic synthetic phone photos, without and with the second pass
(issue 15: small labels), and the CPU time it adds to a photo with no QR code.

Photos (tests/photos.py, deterministic from their seed): 1200 x 900 JPEGs, as a phone app that shrinks photos
sends them, with one signed label URL (145 characters, a version 7 symbol) whose QR code, quiet zone included, is
`--sides` pixels wide, seen at an angle (perspective), turned by up to 35 degrees, in a grainy scene, unevenly lit,
slightly out of focus, JPEG quality 25 to 40 (`photos.small_label_photo`). Each photo is scanned twice:
`second_pass=False` (the scan before issue 15) and `second_pass=True`.

CPU time is per photo, in Ed25519 verifications (CPU seconds divided by the time of one verification on one core,
measured at the start of the run) and in milliseconds beside.

    .venv/bin/python bench/small_labels.py [--photos 200] [--sides 140-160] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from ledger import photo  # noqa: E402
from ledger.keys import KeyPair  # noqa: E402
from tests import photos  # noqa: E402
from verification.label import format_label_url, sign_label  # noqa: E402


def _scan(data: bytes, label: str, second_pass: bool) -> tuple[bool, float, int]:
    start = time.process_time()
    scan = photo.scan_photo(data, accept=lambda text: text == label, second_pass=second_pass)
    return label in scan.texts, time.process_time() - start, scan.attempts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--sides", default="140-160", help="label side in pixels, quiet zone included: LOW-HIGH")
    parser.add_argument("--empty", type=int, default=20, help="photos with no QR code, for the added time")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    low, high = (int(x) for x in args.sides.split("-"))

    reference = common.ed25519_verify_rate()
    verify_s = 1 / reference
    print(f"reference: {reference:,.0f} Ed25519 verifications/s on one core", flush=True)

    key = KeyPair(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))  # a fixed key: the same photos every run
    label = format_label_url("https://verify.example.org", "KAL-000042",
                             sign_label(key.private_key, key.kid, "verify.example.org/log", "KAL-000042"))
    qr = photos.qr_image(label)
    rows = {False: {"read": 0, "cpu_s": 0.0, "passes": 0}, True: {"read": 0, "cpu_s": 0.0, "passes": 0}}
    gained, lost = [], []
    for seed in range(args.photos):
        data = photos.small_label_photo(qr, seed, side=(low, high))
        found = {}
        for second in (False, True):
            ok, cpu, passes = _scan(data, label, second)
            found[second] = ok
            rows[second]["read"] += ok
            rows[second]["cpu_s"] += cpu
            rows[second]["passes"] += passes
        if found[True] and not found[False]:
            gained.append(seed)
        if found[False] and not found[True]:
            lost.append(seed)

    empty = {False: 0.0, True: 0.0}
    for seed in range(args.empty):
        data = photos.jpeg(photos.random_photo((1200, 900), seed=seed), 35)
        for second in (False, True):
            ok, cpu, _ = _scan(data, label, second)
            assert not ok
            empty[second] += cpu

    result = {
        "photos": args.photos, "sides_px": [low, high], "size": [1200, 900],
        "ed25519_verify_per_s_one_core": round(reference),
        "rows": {}, "gained_seeds": gained, "lost_seeds": lost,
    }
    print(f"\n{args.photos} photos 1200 x 900, labels {low}-{high} px, JPEG 25-40")
    print("| scan | read | rate | CPU per photo |")
    print("|---|---|---|---|")
    for second, name in ((False, "first pass only (before)"), (True, "with the second pass (after)")):
        row = rows[second]
        per = row["cpu_s"] / args.photos
        result["rows"][name] = {"read": row["read"], "rate": row["read"] / args.photos, "cpu_ms_per_photo": per * 1e3,
                                "verifications_per_photo": per / verify_s, "passes": row["passes"]}
        print(f"| {name} | {row['read']}/{args.photos} | {row['read'] / args.photos:.1%} | "
              f"{per / verify_s:,.0f} verif. ({per * 1e3:.0f} ms) |")
    before, after = (empty[k] / args.empty for k in (False, True))
    result["no_qr"] = {"photos": args.empty, "before_cpu_ms": before * 1e3, "after_cpu_ms": after * 1e3,
                       "before_verifications": before / verify_s, "after_verifications": after / verify_s}
    print(f"\nno QR code ({args.empty} photos 1200 x 900, JPEG 35): before {before / verify_s:,.0f} verif. "
          f"({before * 1e3:.0f} ms), after {after / verify_s:,.0f} verif. ({after * 1e3:.0f} ms): "
          f"+{(after - before) / verify_s:,.0f} verif. (+{(after - before) * 1e3:.0f} ms)")
    print(f"read only with the second pass: {len(gained)}; read only without it: {len(lost)} {lost[:10]}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
