"""Real connection loss between the service and PostgreSQL, for the store-failure tests.

* `terminate_backends(url)`: `pg_terminate_backend` on every other client backend of the database (from a
  connection of its own), as an operator or a crashing pooler would.
* `CuttingProxy(pg_url)`: a TCP proxy in front of PostgreSQL. The service connects through it
  (`proxy.url`); the test arms it to cut the connection that sends the next `COMMIT`, either **before** the
  COMMIT reaches PostgreSQL (the transaction is rolled back) or **after** PostgreSQL received it but before
  its answer reaches the service (the transaction is committed; the service only sees its connection die); or
  to hold the next COMMIT for a while (a slow store). It can also refuse new connections (the store
  unreachable). Its threads and sockets end with it.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg

COMMIT = b"COMMIT\x00"  # the query text in a Parse or Query message


def terminate_backends(url: str) -> int:
    """Terminate every client backend of `url`'s database except this one; how many were terminated."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchall()
    return sum(1 for (done,) in rows if done)


class CuttingProxy:
    def __init__(self, pg_url: str):
        parts = urlsplit(pg_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._listener = socket.create_server(("127.0.0.1", 0))
        port = self._listener.getsockname()[1]
        netloc = parts.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{port}" if "@" in parts.netloc else f"127.0.0.1:{port}"
        self.url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        self._lock = threading.Lock()
        self._armed: str | None = None  # "before" or "after": cut the connection that sends the next COMMIT
        self.cuts = 0
        self.refusing = False
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._start(self._accept)

    # -- the test's controls ----------------------------------------------------------------------

    def cut_next_commit(self, when: str) -> None:
        assert when in {"before", "after"}
        with self._lock:
            self._armed = when

    def hold_next_commit(self, seconds: float) -> None:
        """Forward the next COMMIT only after `seconds` (and its answer as usual)."""
        with self._lock:
            self._armed = f"hold {seconds}"

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in list(self._sockets):
                _close(sock)
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> "CuttingProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------

    def _start(self, target, *args) -> None:  # noqa: ANN001
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing:
                _close(client)
                continue
            try:
                server = socket.create_connection(self._target, timeout=5)
                server.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._sockets.update((client, server))
            state = {"cut": False}
            self._start(self._pump, client, server, state, True)
            self._start(self._pump, server, client, state, False)

    def _pump(self, source: socket.socket, sink: socket.socket, state: dict, upstream: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if upstream and COMMIT in data:
                    with self._lock:
                        when, self._armed = self._armed, None
                    if when is not None and when.startswith("hold "):
                        time.sleep(float(when.split()[1]))
                    elif when is not None:
                        state["cut"] = True  # nothing more reaches the service on this connection
                        self.cuts += 1
                        if when == "after":
                            sink.sendall(data)
                            time.sleep(0.3)  # PostgreSQL commits; its answer is dropped below
                        break
                if state["cut"] and not upstream:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
