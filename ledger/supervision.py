"""The life of `tagledger serve`'s processes: workers die with their supervisor, stops drain, restarts are prompt.

`tagledger serve` is uvicorn's process supervisor (`Supervisor`, a `uvicorn.supervisors.Multiprocess`) with HTTP
worker processes (`api/asgi.py`). This module holds what makes that tree behave like a service:

* **Workers die with their supervisor.** A worker asks the kernel for SIGTERM when its parent dies
  (`PR_SET_PDEATHSIG`, Linux), and watches its parent's pid twice a second as a portable fallback
  (`follow_supervisor`). Killing the supervisor alone, even with SIGKILL, never leaves a worker serving with
  nobody signing checkpoints or following the projections.
* **A stop drains** (SIGTERM or SIGINT, to the supervisor or to every process of the service at once). The
  listening socket stops starting new TCP connections (a socket filter that drops incoming SYNs: clients retry
  their SYN a second later and reach the next server, or get "connection refused"), the connections already
  queued are still accepted and answered for `DRAIN_PAUSE_SECONDS`, then uvicorn's graceful shutdown answers
  every request in flight (up to `DRAIN_TIMEOUT_SECONDS`) before the worker closes its ledger (which lets its
  writer finish).
  `/readyz` answers 503 from the first moment (`DRAINING`).
* **A restart succeeds at once.** `bind_socket` waits (up to `BIND_WAIT_SECONDS`) for the previous server's
  workers to let go of the port instead of failing with "Address already in use".
* **Metrics across workers.** `worker_metrics_dir` gives the workers one directory for prometheus-client's
  multiprocess mode, owned by the supervisor and removed when it stops.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import shutil
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from uvicorn.supervisors import Multiprocess

log = logging.getLogger("tagledger.supervision")

STORE_ENV = "TAGLEDGER_SERVE_DB"
"""The store URL the supervisor hands to its workers (api/asgi.py)."""

CHECKPOINT_BOUND_ENV = "TAGLEDGER_CHECKPOINT_BOUND"
"""Seconds an accepted entry may wait for a signed checkpoint before the workers refuse writes."""

SUPERVISOR_ENV = "TAGLEDGER_SUPERVISOR_PID"
"""The supervisor's pid, which its workers watch (set by `Supervisor.run`)."""

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's multiprocess mode: where every worker keeps its counters (api/metrics.py)."""

DRAIN_PAUSE_SECONDS = 0.5
"""After a stop signal, how long a worker goes on accepting the connections already queued (none new arrive)."""

DRAIN_TIMEOUT_SECONDS = 65
"""How long a stopping worker waits for the requests in flight: beyond the write timeout (60 s,
api/routes_events.py), so that every write in flight gets its answer."""

BIND_WAIT_SECONDS = 10.0
"""How long `serve` waits for the port to be free (a previous server's workers finishing their drain)."""

WATCH_SECONDS = 0.5
"""How often a worker checks that its supervisor is still its parent."""

DRAINING = threading.Event()
"""Set in a worker once it has been asked to stop: `/readyz` then answers 503."""

_PR_SET_PDEATHSIG = 1
_SO_ATTACH_FILTER = 26  # Linux, <asm-generic/socket.h>


# --- workers die with their supervisor -----------------------------------------------------------------------


def follow_supervisor() -> None:
    """In a worker: stop (SIGTERM, so it drains) when the supervisor named by $TAGLEDGER_SUPERVISOR_PID dies, and
    drain on a stop signal (`drain_on_signals`). Nothing happens outside `tagledger serve` (no such variable)."""
    value = os.environ.get(SUPERVISOR_ENV)
    if not value:
        return
    supervisor = int(value)
    _parent_death_signal(signal.SIGTERM)
    drain_on_signals()
    threading.Thread(target=_watch_parent, args=(supervisor,), name="tagledger-watch-supervisor", daemon=True).start()
    if os.getppid() != supervisor:  # it died before the kernel was asked to tell us
        os.kill(os.getpid(), signal.SIGTERM)


def _parent_death_signal(signum: int) -> bool:
    """Ask Linux to send `signum` to this process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):  # no prctl: the watchdog alone does it
        return False


def _watch_parent(supervisor: int) -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        if os.getppid() != supervisor:
            log.warning("the supervisor (pid %d) is gone: stopping this worker", supervisor)
            os.kill(os.getpid(), signal.SIGTERM)
            return


# --- draining --------------------------------------------------------------------------------------------------


_DROP_SYN = (  # classic BPF over the TCP header: drop a segment with SYN set (a new connection), pass the rest
    (0x30, 0, 0, 13),           # ldb [13]   the TCP flags byte
    (0x45, 0, 1, 0x02),         # jset #SYN  set: next instruction, else skip one
    (0x06, 0, 0, 0),            # ret #0     drop
    (0x06, 0, 0, 0xFFFFFFFF),   # ret #-1    pass
)


def refuse_new_connections(sock: Any) -> bool:
    """Stop `sock` (a listening TCP socket, shared by every process that holds it) from starting new connections,
    with a socket filter that drops incoming SYN segments (Linux). Handshakes under way complete, connections
    already queued can still be accepted; new clients retry their SYN a second later and reach whoever listens
    then (the next server), or are refused: they never send a request that nobody answers."""
    if not sys.platform.startswith("linux"):
        return False
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in _DROP_SYN)
    program = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(_DROP_SYN), ctypes.addressof(program))
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError as exc:  # a closed socket, or not allowed: the drain still answers what is in flight
        log.debug("could not stop new connections on %r: %s", sock, exc)
        return False
    return True


def drain_on_signals(pause: float = DRAIN_PAUSE_SECONDS) -> bool:
    """In a uvicorn worker, from the application factory (which runs after uvicorn installed its signal handlers):
    on the first SIGTERM or SIGINT, set `DRAINING`, stop new connections on the listening sockets, keep serving for
    `pause` seconds, then hand over to uvicorn's graceful shutdown. While draining, a further SIGTERM (the
    supervisor forwarding the stop) changes nothing; a further SIGINT is uvicorn's (twice: quit at once)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    uvicorn_handler = signal.getsignal(signal.SIGTERM)
    server = getattr(uvicorn_handler, "__self__", None)
    if server is None or not hasattr(server, "should_exit") or not callable(uvicorn_handler):
        log.warning("not running under a uvicorn server: stops will not pause to drain queued connections")
        return False

    def handle(signum: int, frame: FrameType | None) -> None:
        if DRAINING.is_set():
            if signum == signal.SIGINT:
                uvicorn_handler(signum, frame)
            return
        DRAINING.set()
        for listener in getattr(server, "servers", []):
            for sock in listener.sockets:
                refuse_new_connections(sock)
        timer = threading.Timer(pause, uvicorn_handler, args=(signum, None))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return True


class Supervisor(Multiprocess):
    """uvicorn's supervisor, which on SIGTERM or SIGINT first stops new connections and lets go of its own copy of
    the listening socket (so the port is free as soon as the workers have drained), then stops the workers."""

    def __init__(self, config: Any, sockets: list[socket.socket]):
        super().__init__(config, sockets)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._stop)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if not self.should_exit.is_set():
            for sock in self.sockets:
                refuse_new_connections(sock)
                sock.close()
            logging.getLogger("uvicorn.error").info("Received %s, stopping the workers.", signal.Signals(signum).name)
        self.should_exit.set()

    def run(self) -> None:
        os.environ[SUPERVISOR_ENV] = str(os.getpid())  # the workers (spawned) inherit it
        try:
            super().run()
        finally:
            stop_resource_tracker()


def stop_resource_tracker() -> None:
    """Stop multiprocessing's resource tracker, which spawning the workers started, and wait for it.

    It ignores SIGINT and SIGTERM and leaves only when this process's end of its pipe closes, that is a moment
    *after* this process has exited: `serve` would outlive itself by one process. `_stop` is the standard
    library's own way to end it (it closes the pipe and waits); it is private, hence the guard."""
    from multiprocessing import resource_tracker

    stop = getattr(resource_tracker._resource_tracker, "_stop", None)
    if callable(stop):
        stop()


# --- prompt restarts --------------------------------------------------------------------------------------------


class PortInUse(OSError):
    """The port stayed in use by another program for `BIND_WAIT_SECONDS`."""


def bind_socket(host: str, port: int, *, wait: float = BIND_WAIT_SECONDS,
                on_wait: Callable[[str], None] | None = None) -> socket.socket:
    """A TCP socket bound to (host, port) for uvicorn's workers; waits up to `wait` seconds while the address is
    in use (the previous server's workers letting go of it; `on_wait` is told once), then raises `PortInUse`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + wait
    told = False
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            if time.monotonic() >= deadline:
                raise PortInUse(errno.EADDRINUSE, f"port {port} on {host} is in use by another program "
                                f"(waited {wait:g} s): stop it or choose another --port") from None
            if on_wait is not None and not told:
                on_wait(f"port {port} on {host} is in use: waiting up to {wait:g} s for it (a previous server "
                        "finishing its requests?)")
                told = True
            time.sleep(0.1)
            continue
        sock.set_inheritable(True)
        return sock


# --- metrics across workers -------------------------------------------------------------------------------------


@contextlib.contextmanager
def worker_metrics_dir(home: Path) -> Iterator[Path]:
    """A directory for prometheus-client's multiprocess mode (`<home>/run/metrics-<supervisor pid>`), named in
    $PROMETHEUS_MULTIPROC_DIR for the workers, and removed afterwards. Directories that supervisors killed before
    they could remove theirs left behind are removed first."""
    run = home / "run"
    run.mkdir(parents=True, exist_ok=True)
    for old in run.glob("metrics-*"):
        pid = old.name.removeprefix("metrics-")
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = run / f"metrics-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    previous = os.environ.get(METRICS_ENV)
    os.environ[METRICS_ENV] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(METRICS_ENV, None)
        else:
            os.environ[METRICS_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
