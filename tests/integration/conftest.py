"""A real ledger behind a real HTTP server, for the integration tests.

`live_ledger(store_url)` (so every test that uses it runs on SQLite and on PostgreSQL):

* creates the ledger in a fresh store (genesis signed by a fresh root key, operator ``itsci``);
* serves ``api.app.create_app(ledger)`` with ``uvicorn.Server`` in a background thread, on a socket bound
  to a free 127.0.0.1 port before the thread starts (no port race), and waits until ``/healthz`` answers;
* yields a `LiveLedger`: ``.url``, ``.ledger``, ``.operator`` (a `LedgerClient` over HTTP signed with the
  root key), ``.http`` (a plain httpx client with no credentials), ``.register(...)`` to register an
  organisation with a fresh key and get its own `LedgerClient`, ``.entries()`` (the log size seen by
  ``/healthz``);
* shuts the server down and closes the ledger afterwards.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn

from api.app import create_app
from ledger.client import HttpTransport, LedgerClient, Signer
from ledger.genesis import GenesisKeys, create_ledger
from ledger.keys import KeyPair
from ledger.service import Ledger

OPERATOR = "itsci"
STARTUP_TIMEOUT = 10.0
# One TLS context for every test client: httpx builds (and loads the CA bundle into) a new one per Client
# otherwise, about 0.1 s each. The tests speak plain HTTP to 127.0.0.1; this only saves the set-up time.
_TLS = ssl.create_default_context()


def http_client(base_url: str, **kwargs: Any) -> httpx.Client:
    kwargs.setdefault("timeout", 30.0)
    return httpx.Client(base_url=base_url, trust_env=False, verify=_TLS, **kwargs)


@dataclass
class Org:
    """A registered organisation as the tests see it: its id, role, key and HTTP client."""

    id: str
    role: str
    name: str
    keys: KeyPair
    client: LedgerClient

    @property
    def signer(self) -> Signer:
        return self.client.signer


@dataclass
class LiveLedger:
    url: str
    ledger: Ledger
    root: KeyPair
    operator: LedgerClient
    http: httpx.Client
    orgs: dict[str, Org] = field(default_factory=dict)
    log_key: KeyPair | None = None
    """The log's signing key (the fixture's app publishes checkpoints with it)."""
    _clients: list[httpx.Client] = field(default_factory=list)

    # -- clients -------------------------------------------------------------------------------

    def new_http(self, **kwargs: Any) -> httpx.Client:
        """A fresh httpx client on the server (closed at teardown)."""
        client = http_client(self.url, **kwargs)
        self._clients.append(client)
        return client

    def client_for(self, org: str, keys: KeyPair, *, retries: int = 3) -> LedgerClient:
        return LedgerClient(HttpTransport(self.url, client=self.new_http()), Signer(org, keys), retries=retries)

    def register(self, org: str, role: str, *, name: str | None = None, country: str = "CD",
                 **extra: Any) -> LedgerClient:
        """Register `org` (operator-signed, over HTTP) with a fresh key; return the org's own client."""
        keys = KeyPair.generate()
        name = name or f"{org.replace('-', ' ').title()} ({role})"
        self.operator.register_org(org, name, role, country, [keys.public_key], **extra)
        client = self.client_for(org, keys)
        self.orgs[org] = Org(org, role, name, keys, client)
        return client

    # -- reading -------------------------------------------------------------------------------

    def entries(self) -> int:
        response = self.http.get("/healthz")
        assert response.status_code == 200, response.text
        return response.json()["entries"]

    def head(self, stream: str) -> str | None:
        response = self.http.get(f"/v1/streams/{stream}/head")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.json()["hash"]

    def close_clients(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()


def _free_socket(port: int = 0) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets whose proto is TCP, and without it
    # every response costs a 40 ms Nagle/delayed-ACK stall.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class _QuickServer(uvicorn.Server):
    """uvicorn checks `should_exit` every 100 ms; every 10 ms makes the per-test shutdown faster."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            await asyncio.sleep(0.01)


class ServerThread:
    """`uvicorn.Server` in a daemon thread, on a pre-bound socket (a free port, or `port`)."""

    def __init__(self, app: Any, port: int = 0):
        self.sock = _free_socket(port)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                timeout_graceful_shutdown=2)
        self.server = _QuickServer(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name=f"uvicorn-{self.port}", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        with http_client(self.url, timeout=1.0) as probe:
            while True:
                if not self.thread.is_alive():
                    raise RuntimeError("the uvicorn thread died during startup")
                if self.server.started:
                    try:
                        if probe.get("/healthz").status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server at {self.url} did not answer /healthz in {STARTUP_TIMEOUT} s")
                time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        assert not self.thread.is_alive(), "the uvicorn thread did not stop"

    def __enter__(self) -> "ServerThread":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def live_ledger(store_url: str) -> Iterator[LiveLedger]:
    ledger = Ledger.open(store_url)
    root = KeyPair.generate()
    log_key = KeyPair.generate()
    server: ServerThread | None = None
    live: LiveLedger | None = None
    try:
        create_ledger(
            ledger,
            name="tagledger-test",
            operator=OPERATOR,
            operator_name="ITSCI programme",
            country="CD",
            log_key_name="tagledger.test/log",
            keys=GenesisKeys(root, log_key),
        )
        server = ServerThread(create_app(ledger, log_key=log_key))
        server.start()
        http = http_client(server.url)
        live = LiveLedger(url=server.url, ledger=ledger, root=root, operator=None, http=http,  # type: ignore[arg-type]
                          log_key=log_key)
        live._clients.append(http)
        live.operator = live.client_for(OPERATOR, root)
        yield live
    finally:
        if live is not None:
            live.close_clients()
        if server is not None:
            server.stop()
        ledger.close()
