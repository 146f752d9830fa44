"""A real headless Chromium (Debian's `chromium` package) for the page tests.

* `chromium_binary`: the browser's path (`chromium` on PATH, or $TAGLEDGER_CHROMIUM). `make test` installs the
  Debian package when it is missing (`make sysdeps`).
  If it is still missing, the browser tests FAIL when `CI` is set (CI=true, as .ci/run does) and are skipped with
  a loud banner otherwise, like PostgreSQL in tests/conftest.py.
* `browser`: one Chromium for the session, driven over the DevTools protocol (`Browser.open(url, ...)` returns
  what the page shows: its HTTP status, `document.body.innerText` — the text a person sees, which leaves out
  the content of closed <details> — and any value computed in the page).
* `dump_dom(url)`: `chromium --headless --dump-dom URL`, the one-shot command line.
* `page_world`: a live ledger (SQLite; tests/integration/test_page.py covers both backends) with the story of
  tests/integration/page_world.py.
* `playwright_driver`, `pw_browser`: Playwright driving this same Chromium (`executable_path`, never a downloaded
  build), for the phone app's tests (tests/browser/phone.py, test_app_*.py).

Chromium is started with the flags of ../shared/README.md: the machine has no internet and without
`--disable-background-networking --disable-component-update` it keeps trying to reach outside hosts.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import live_ledger  # noqa: F401 - the fixture, for the tests here
from tests.integration.page_world import build_page_world

CANDIDATES = ("chromium", "chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
         "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars"]
START_TIMEOUT = 30.0
LOAD_TIMEOUT = 20.0
PHONE = {"width": 360, "height": 740, "deviceScaleFactor": 2, "mobile": True}
_MISSING = pytest.StashKey[str]()


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _banner(tr, reason: str) -> None:
    tr.write_line("")
    tr.write_sep("!", "CHROMIUM MISSING", red=True, bold=True)
    for line in (f"CHROMIUM IS NOT INSTALLED -- THE BROWSER TESTS DID NOT RUN ({reason})",
                 "  Install it with `make sysdeps` (apt-get install chromium); `make test` does it for you.",
                 "  With CI set (CI=true), these tests FAIL instead of being skipped."):
        tr.write_line(line, red=True, bold=True)
    tr.write_sep("!", red=True, bold=True)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    reason = config.stash.get(_MISSING, None)
    if reason is not None:
        _banner(terminalreporter, reason)


@pytest.fixture(scope="session")
def chromium_binary(request: pytest.FixtureRequest) -> str:
    chosen = os.environ.get("TAGLEDGER_CHROMIUM")  # another Chromium build, e.g. google-chrome
    if chosen:
        found, reason = shutil.which(chosen), f"TAGLEDGER_CHROMIUM={chosen} is not an executable"
    else:
        found = next((path for path in map(shutil.which, CANDIDATES) if path), None)
        reason = f"none of {', '.join(CANDIDATES)} is on PATH"
    if found is None:
        request.config.stash[_MISSING] = reason
        message = f"Chromium is required for the browser tests: {reason}. Run `make sysdeps`."
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


# ------------------------------------------------------------------------------------------------
# The DevTools protocol, just enough of it
# ------------------------------------------------------------------------------------------------


@dataclass
class Seen:
    """What a person sees on a loaded page."""

    url: str
    status: int | None
    text: str  # document.body.innerText
    lang: str
    title: str


class Tab:
    def __init__(self, ws: Any):
        self.ws = ws
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + LOAD_TIMEOUT
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + LOAD_TIMEOUT
        while True:
            for index, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(index)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {method} within {LOAD_TIMEOUT} s")
            self.events.append(json.loads(self.ws.recv(timeout=remaining)))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")



class Browser:
    def __init__(self, binary: str, profile: Path):
        self.profile = profile
        self.process = subprocess.Popen(
            [binary, *FLAGS, "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited ({self.process.returncode}): "
                                   f"{self.process.stderr.read().decode(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not open its DevTools port in {START_TIMEOUT} s")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", trust_env=False, timeout=10)

    def open(self, url: str, *, accept_language: str = "en-US,en;q=0.9", evaluate: str | None = None,
             screenshot: Path | None = None) -> tuple[Seen, Any]:
        """Load `url` in a fresh tab the size of a small phone (360 px wide), as a person with these language
        preferences; return what is seen, and the value of `evaluate` (a JavaScript expression run by the test,
        the page itself has none)."""
        from websockets.sync.client import connect  # websockets comes with uvicorn[standard]

        target = self.http.put("/json/new?about:blank").json()
        try:
            with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as ws:
                return self._load(Tab(ws), url, accept_language, evaluate, screenshot)
        finally:
            self.http.get(f"/json/close/{target['id']}")

    @staticmethod
    def _load(tab: Tab, url: str, accept_language: str, evaluate: str | None,
              screenshot: Path | None) -> tuple[Seen, Any]:
        tab.call("Page.enable")
        tab.call("Network.enable")
        tab.call("Emulation.setDeviceMetricsOverride", **PHONE)
        tab.call("Emulation.setUserAgentOverride", userAgent="Mozilla/5.0 (Linux; Android 13) tagledger-test",
                 acceptLanguage=accept_language)
        tab.events.clear()
        tab.call("Page.navigate", url=url)
        tab.wait_for("Page.loadEventFired")
        status = None
        for event in tab.events:
            if event.get("method") == "Network.responseReceived" and event["params"].get("type") == "Document":
                status = event["params"]["response"]["status"]
        seen = Seen(url=url, status=status, text=tab.evaluate("document.body.innerText"),
                    lang=tab.evaluate("document.documentElement.lang"), title=tab.evaluate("document.title"))
        value = tab.evaluate(evaluate) if evaluate else None
        if screenshot is not None:
            shot = tab.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        return seen, value

    def close(self) -> None:
        if getattr(self, "http", None) is not None:
            self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture(scope="session")
def browser(chromium_binary: str) -> Iterator[Browser]:
    with tempfile.TemporaryDirectory(prefix="tagledger-chromium-") as profile:
        chromium = Browser(chromium_binary, Path(profile))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def playwright_driver(chromium_binary: str) -> Iterator[Any]:
    """Playwright (its Python package and driver), pointed at this machine's Chromium: it never downloads a browser.
    Missing, it fails under CI=true and skips otherwise, like Chromium itself. One per test module: its sync API
    runs an event loop in this thread while it is started, so it must be stopped before other tests call
    `asyncio.run` (they would fail with "cannot be called from a running event loop")."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        message = "Playwright is required for the app's browser tests: `pip install -e '.[dev]'` (make venv)."
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    driver = sync_playwright().start()
    try:
        yield driver
    finally:
        driver.stop()


@pytest.fixture(scope="module")
def pw_browser(playwright_driver: Any, chromium_binary: str) -> Iterator[Any]:
    """One headless Chromium for a test module's phones (each phone is its own browser context)."""
    from tests.browser.phone import CHROMIUM_ARGS

    browser = playwright_driver.chromium.launch(executable_path=chromium_binary, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def dump_dom(chromium_binary: str, tmp_path: Path):
    """`chromium --headless ... --dump-dom URL` -> the DOM as Chromium parsed it (and a screenshot, if asked)."""

    def run(url: str, *, screenshot: Path | None = None) -> str:
        profile = tmp_path / f"profile-{time.monotonic_ns()}"
        extra = [f"--screenshot={screenshot}", "--window-size=360,1600"] if screenshot else ["--dump-dom"]
        done = subprocess.run([chromium_binary, *FLAGS, f"--user-data-dir={profile}", *extra, url],
                              capture_output=True, timeout=60, cwd=tmp_path)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        return done.stdout.decode("utf-8")

    return run


# ------------------------------------------------------------------------------------------------
# The ledger behind the pages
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def store_url(tmp_sqlite_url: str) -> str:
    """One backend is enough for what a browser shows (tests/integration/test_page.py runs on both)."""
    return tmp_sqlite_url


@pytest.fixture
def page_world(live_ledger):  # noqa: F811 - the imported fixture
    build_page_world(live_ledger)
    live_ledger.ledger.publish_checkpoint()
    return live_ledger
