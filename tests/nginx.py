"""A real nginx (Debian's `nginx` package) serving a directory of tiles on a free loopback port, for the tests.

`serve_directory(root)` runs nginx in the foreground (``daemon off``) as a child process in a session of its
own, with a minimal configuration in a temporary directory (pid file, error log and temporary paths there too)
around the server block of ``docs/nginx-tiles.conf``, so the configuration the documentation gives is the one
tested. On exit the whole process group (master and worker) is terminated, then killed, whatever happened.

`make test` installs the package when it is missing (`make sysdeps`). Without it the tests that need nginx FAIL
when ``CI`` is set (as .ci/run does) and are skipped otherwise, like Chromium (tests/browser/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SERVER_BLOCK = Path(__file__).resolve().parent.parent / "docs" / "nginx-tiles.conf"
START_TIMEOUT = 10.0
CANDIDATES = ("nginx", "/usr/sbin/nginx")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def nginx_binary() -> str:
    """nginx's path; fails the test under CI and skips it otherwise when it is not installed."""
    found = next((path for path in map(shutil.which, CANDIDATES) if path), None)
    if found is None:
        message = "nginx is required for the static tiles tests: run `make sysdeps` (apt-get install nginx)"
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(work: Path, root: Path, port: int) -> str:
    server = SERVER_BLOCK.read_text().replace("LISTEN", f"127.0.0.1:{port}").replace("ROOT", str(root))
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "\n".join(f"    {kind}_temp_path {work / kind};" for kind in kinds)
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers read the test's private temp directories
    return (f"{user}daemon off;\nworker_processes 1;\npid {work / 'nginx.pid'};\nerror_log {work / 'error.log'} warn;\n"
            f"events {{ worker_connections 64; }}\nhttp {{\n    access_log off;\n{temp}\n{server}\n}}\n")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate nginx's process group (fast shutdown), then kill whatever is left of it (a worker, a stuck master)."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """nginx serving ``root`` as a tiles prefix; yields its URL (``http://127.0.0.1:PORT``)."""
    binary = nginx_binary()
    with tempfile.TemporaryDirectory(prefix="tagledger-nginx-") as temp:
        work = Path(temp)
        for attempt in range(3):  # another process may take the port between choosing and binding it
            port = _free_port()
            conf = work / "nginx.conf"
            conf.write_text(_config(work, root.resolve(), port))
            process = subprocess.Popen([binary, "-p", str(work), "-e", str(work / "error.log"), "-c", str(conf)],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
            try:
                deadline = time.monotonic() + START_TIMEOUT
                while process.poll() is None and not _listening(port) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if process.poll() is None and _listening(port):
                    yield f"http://127.0.0.1:{port}"
                    return
                log = (work / "error.log").read_text() if (work / "error.log").exists() else ""
                if attempt == 2 or "Address already in use" not in log:
                    raise RuntimeError(f"nginx did not start on 127.0.0.1:{port}: {log.strip()[-500:]}")
            finally:
                _stop(process)
