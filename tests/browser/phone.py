"""A phone running the app (/app/) in real Chromium, driven by Playwright: what a person taps and reads.

`Phone(page)` wraps one Playwright page (one browser context = one phone, with its own IndexedDB, service worker and
cache); `operator_cli(...)` runs the operator's `tagledger` commands (in-process, over HTTP) against the live ledger.
Screenshots for the README are written when $TAGLEDGER_SCREENSHOTS names a directory (never in a normal run).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any

from ledger.cli import main as cli_main

PHONE = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
GPS = {"latitude": -2.1234567, "longitude": 28.7654321}
WAIT_MS = 20_000
CHROMIUM_ARGS = ["--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--no-default-browser-check", "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio"]


def context_options(locale: str = "en-US") -> dict[str, Any]:
    return {**PHONE, "locale": locale, "geolocation": GPS, "permissions": ["geolocation"]}


class OperatorCli:
    """`tagledger --home HOME <command> ... --url URL --key ROOT.pem`, in this process; returns the printed JSON."""

    def __init__(self, live: Any, home: Path):
        self.url = live.url
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        (home / "tagledger.json").write_text(json.dumps({"operator": "itsci"}), encoding="utf-8")
        self.key = home / "root.pem"
        live.root.save(self.key)

    def __call__(self, *args: str) -> Any:
        return self.run(*args, "--url", self.url, "--key", str(self.key))

    def audit(self) -> str:
        """`tagledger audit URL`: the independent auditor (verification/) replays the whole log."""
        return self.run("audit", self.url, "--no-state")

    def run(self, *args: str) -> Any:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(["--home", str(self.home), *args])
        assert code == 0, (args, out.getvalue(), err.getvalue())
        text = out.getvalue()
        try:
            return json.loads(text)
        except ValueError:
            return text


class Phone:
    def __init__(self, page: Any, url: str, name: str):
        self.page = page
        self.url = url
        self.name = name
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.set_default_timeout(WAIT_MS)

    # -- navigation ---------------------------------------------------------------------------------------------

    def until(self, script: str, arg: Any = None, timeout_ms: int = WAIT_MS) -> Any:
        """Evaluate `script` (a JavaScript function of `arg`) until it returns something truthy; return that.
        (Playwright's wait_for_function evaluates strings inside the page, which the app's CSP forbids.)"""
        from playwright.sync_api import Error

        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            try:
                value = self.page.evaluate(script, arg)
            except Error as error:  # the page reloaded meanwhile (e.g. a new version of the app took over)
                if "context was destroyed" not in str(error) and "navigat" not in str(error):
                    raise
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: still false after {timeout_ms} ms: {script}")
            self.page.wait_for_timeout(100)

    def open(self, path: str = "/app/") -> None:
        self.page.goto(self.url + path)
        self.ready()

    def ready(self) -> None:
        self.page.wait_for_selector("body[data-ready]")

    def go(self, hash_: str) -> None:
        self.page.evaluate("(h) => { location.hash = h; }", hash_)
        self.page.wait_for_timeout(50)

    def text(self, selector: str = "main") -> str:
        return self.page.inner_text(selector)

    def shot(self, name: str, top: bool = True) -> None:
        target = os.environ.get("TAGLEDGER_SCREENSHOTS")
        if target:
            if top:
                self.page.evaluate("() => window.scrollTo(0, 0)")
            Path(target).mkdir(parents=True, exist_ok=True)
            path = Path(target) / f"{name}.png"
            self.page.screenshot(path=str(path), full_page=False)
            from PIL import Image  # 128 colours: a third of the bytes in the repository, no visible difference

            Image.open(path).convert("RGB").quantize(128).save(path, optimize=True)

    def layout(self) -> dict[str, Any]:
        """How the screen fits a 360 px phone: sideways overflow (px), and the touch targets under 44 px high."""
        return self.page.evaluate("""() => ({
            width: document.documentElement.clientWidth,
            overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
            small: [...document.querySelectorAll('button, a.action, a.button, input:not([type=checkbox]), select')]
              .filter(e => e.offsetParent !== null && e.getBoundingClientRect().height < 44)
              .map(e => e.id || e.name || e.textContent.trim())})""")

    # -- the key ------------------------------------------------------------------------------------------------

    def make_key(self, org: str, passphrase: str = "") -> tuple[str, str]:
        self.go("#/key")
        self.page.fill("#org", org)
        if passphrase:
            self.page.click("#make-key summary")
            self.page.fill("#passphrase", passphrase)
            self.page.fill("#passphrase2", passphrase)
        before = self.page.inner_text("#kid") if self.page.query_selector("#kid") else ""
        self.page.click("#make-key-button")
        self.until("(before) => (document.querySelector('#kid')?.textContent ?? before) !== before", before)
        return self.page.inner_text("#public-key"), self.page.inner_text("#kid")

    def check_registration(self) -> str:
        self.go("#/key")
        before = self.page.get_attribute("#registration", "data-checked") if self.page.query_selector(
            "#registration") else ""
        self.page.click("#check-registration")
        self.until("(before) => (document.querySelector('#registration')?.dataset.checked ?? before) !== before",
                   before)
        return self.page.inner_text("#registration")

    # -- recording and sending ----------------------------------------------------------------------------------

    def sync(self, position: int = 0) -> None:
        """Tap "Send now" on the home screen and wait until the phone has read its custody back (as of at least
        `position` entries of the log, when given: a sending still running from before may also read it)."""
        self.go("#/")
        self.page.wait_for_selector("#sync")
        before = self.page.evaluate("import('/app/js/db.js').then(m => m.setting('custody')).then(c => c?.at ?? '')")
        self.page.click("#sync")
        self.until("""([before, position]) => import('/app/js/db.js').then(m => m.setting('custody')).then(c =>
            (c?.at ?? '') !== before && (c?.projection_position ?? 0) >= position)""", [before, position])

    def record(self, action: str, shot: str | None = None, **fields: Any) -> str:
        """Fill the form of `action` (field name -> value; `gps=True` taps "Use my position") and sign (`shot`: a
        screenshot of the filled form first, when screenshots are asked for)."""
        self.go(f"#/record/{action}")
        form = f"#form-{action}"
        self.page.wait_for_selector(form)
        for name, value in fields.items():
            if name == "gps":
                self.page.click("#f-gps")
                self.until("() => document.querySelector('[data-gps]').dataset.gps !== ''")
            elif name == "outputs":
                for row, (tag, kilograms) in enumerate(value, start=1):
                    if row > 2:
                        self.page.click(f'{form} [data-field="outputs"] > button')
                    self.page.fill(f"{form} .output:nth-of-type({row}) [name=output_tag]", tag)
                    self.page.fill(f"{form} .output:nth-of-type({row}) [name=output_mass]", kilograms)
            elif name == "inputs":
                for tag in value:
                    self.page.check(f'{form} input[name="inputs"][value="{tag}"]')
            else:
                selector = f"{form} [name={name}]"
                if self.page.eval_on_selector(selector, "e => e.tagName") == "SELECT":
                    self.page.select_option(selector, value)
                else:
                    self.page.fill(selector, str(value))
        if shot:
            self.shot(shot)
        self.page.click(f"{form} #sign")
        self.until(f"() => Boolean(document.querySelector('{form}').dataset.saved || "
                   "document.querySelector('#form-message .notice.bad'))")
        saved = self.page.eval_on_selector(form, "f => f.dataset.saved || ''")
        assert saved, self.page.inner_text("#form-message")
        return saved

    def outbox(self) -> list[dict[str, str]]:
        """The records on the phone, newest first: id, status, rule, and what the person reads."""
        self.go("#/outbox")
        self.page.wait_for_selector("#sync-outbox")
        return self.page.eval_on_selector_all("ul.outbox li", """items => items.map(li => ({
            id: li.dataset.id, status: li.dataset.status, rule: li.dataset.rule, text: li.innerText}))""")

    def waiting(self, expected: int | None = None) -> int:
        """The count of records waiting to be sent, as the app's header shows it; with `expected`, once the header
        shows it (it is updated a moment after a record is saved), or what it shows when the wait runs out."""
        if expected is not None:
            try:
                self.until(f"() => document.querySelector('#outbox-count')?.dataset.waiting === '{expected}'")
            except TimeoutError:
                pass
        return int(self.page.get_attribute("#outbox-count", "data-waiting"))

    def wait_outbox(self, expected: list[str]) -> list[dict[str, str]]:
        """Wait until the outbox's statuses (newest first) are `expected`; returns it."""
        try:
            self.until("""(expected) => import('/app/js/db.js').then(m => m.outboxItems()).then(items =>
                JSON.stringify(items.reverse().map(i => i.status)) === JSON.stringify(expected))""", expected)
        except TimeoutError:
            seen = self.page.evaluate("""() => import('/app/js/db.js').then(m => m.outboxItems()).then(items =>
                items.reverse().map(i => [i.status, i.type, i.result]))""")
            raise AssertionError(f"{self.name}: outbox {seen}, expected {expected}") from None
        # the stored statuses are final; the list on screen is redrawn a moment later: wait for it too
        self.go("#/outbox")
        try:
            self.until("""(expected) => JSON.stringify([...document.querySelectorAll('ul.outbox li')]
                .map(li => li.dataset.status)) === JSON.stringify(expected)""", expected)
        except TimeoutError:
            pass  # the caller's assertions then show what the screen says
        return self.outbox()
