"""Child process for test_durability: write events from several threads, print each acknowledgement."""

from __future__ import annotations

import sys
import threading

from tests.ledger.world import make_world


def main(url: str) -> None:
    world = make_world(url, tags=400)
    print("READY", flush=True)
    lock = threading.Lock()

    def worker(first: int) -> None:
        for n in range(first, 401, 4):
            tag = f"KAL-{n:06d}"
            receipt = world.clients["kalimbi"].attach(tag, mineral="tin", mass_g=10_000 + n, pit="P1")
            with lock:
                print(f"ACK {receipt['seq']} {receipt['hash']}", flush=True)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main(sys.argv[1])
