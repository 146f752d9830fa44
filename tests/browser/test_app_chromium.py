"""The phone app (/app/) in real Chromium (Debian's, driven by Playwright): keys made on the phone and registered
with the operator's CLI, records made with no network, a reload with no network (the service worker serves the
app), sending when the network is back, the recipient on a second phone, a label scanned through Chromium's fake
camera, conflicts and a revoked key explained in plain words, and a browser killed with records waiting (restarted,
then updated to a new version of the app as the network comes back: nothing is lost).

Each phone is a browser context (its own IndexedDB, service worker and cache: a second profile); the network is
cut with Playwright's offline emulation, which also covers the service worker's requests.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from api import routes_app
from ledger.client.read_auth import read_authorization
from ledger.keys import KeyPair
from tests.browser.phone import CHROMIUM_ARGS, OperatorCli, Phone, context_options
from verification.encoding import b64url_decode
from verification.envelope import Envelope, envelope_hash, verify_signature

SITE, TRADER = "kal-site", "bukavu-trader"
TAG, OTHER, THIRD = "APP-000001", "APP-000002", "APP-000003"


@pytest.fixture
def cli(live_ledger, tmp_path) -> OperatorCli:
    return OperatorCli(live_ledger, tmp_path / "operator")


@pytest.fixture
def phones(pw_browser, live_ledger):
    """New phones (browser contexts) on the live ledger, closed after the test."""
    opened = []

    def new(name: str, locale: str = "en-US") -> Phone:
        context = pw_browser.new_context(**context_options(locale))
        opened.append(context)
        phone = Phone(context.new_page(), live_ledger.url, name)
        phone.open()
        return phone

    yield new
    for context in opened:
        context.close()


def caught_up(live) -> None:
    """Wait until the ledger's custody projection (what GET /v1/orgs/{org}/custody reads) has read the whole log:
    it follows the log a moment behind, and a phone about to go offline must see the tags just issued to it."""
    deadline = time.monotonic() + 10
    while live.http.get("/v1/stats").json()["projection_position"] < live.entries():
        assert time.monotonic() < deadline, "the custody projection did not catch up"
        time.sleep(0.05)


def register(cli: OperatorCli, phone: Phone, org: str, role: str, name: str) -> str:
    public_key, kid = phone.make_key(org)
    cli("org", "register", org, "--name", name, "--role", role, "--country", "CD", "--public-key", public_key)
    return kid


def verify_tag_with_reference(http: httpx.Client, tag: str) -> list[dict]:
    """What `verification/` says of the tag view: every envelope well formed, signed by the key the view names,
    hashed as it says, each naming the one before it. Returns the events."""
    document = http.get(f"/v1/tags/{tag}").json()
    previous = None
    for event in document["events"]:
        envelope = Envelope.from_json(event["envelope"])
        key = document["keys"][envelope.body["key"]]
        assert verify_signature(b64url_decode(key["public_key"]), envelope), event["seq"]
        assert envelope_hash(envelope) == event["hash"]
        body = envelope.body
        named = body["prev"] if body["stream"] == f"tag:{tag}" else (body.get("links") or {}).get(f"tag:{tag}")
        assert previous is None or named == previous, (event["seq"], named, previous)
        previous = event["hash"]
    assert document["problems"] == [] and document["verdict"]["authentic"] is True
    return document["events"]


def test_offline_records_reload_sync_and_receive(phones, live_ledger, cli) -> None:
    site = phones("site")
    trader = phones("trader", locale="sw-TZ")  # a second profile, in Swahili
    site_kid = register(cli, site, SITE, "site", "Kalimbi Zea site")
    site.shot("key")
    register(cli, trader, TRADER, "trader", "Bukavu Minerals")
    cli("tags", "issue", SITE, "--tag", TAG, "--tag", OTHER)
    caught_up(live_ledger)
    assert site.check_registration() == "This phone's key is registered: the ledger accepts what it signs."
    site.sync()  # reads the tags issued to it, their heads, and the organisations
    site.shot("home")
    for screen in ("#/", "#/record/attach", "#/record/dispatch", "#/key"):  # a small phone, fingers
        site.go(screen)
        site.page.wait_for_selector("main h1, main .actions")
        assert site.layout() == {"width": 360, "overflow": 0, "small": []}, screen

    # no network: put a tag on a bag, then send the same bag; both signed and kept on the phone
    site.page.context.set_offline(True)
    site.record("attach", shot="attach", tag=TAG, mineral="tin", mass="50,2", pit="Pit 7", gps=True)
    site.record("dispatch", tag=TAG, to=TRADER)
    assert site.waiting(2) == 2
    site.go("#/outbox")
    site.shot("outbox-offline")
    # the app starts again with no network: the service worker serves it, the outbox is intact
    site.page.reload()
    site.ready()
    assert site.page.inner_text("#network") == "No network"
    waiting = site.outbox()
    assert [r["status"] for r in waiting] == ["waiting", "waiting"]
    assert waiting[0]["text"].startswith(f"Dispatch · {TAG} · to Bukavu Minerals")
    assert live_ledger.http.get(f"/v1/tags/{TAG}").json()["state"]["status"] == "issued"  # nothing sent yet

    # the network is back: both go, and the ledger accepts them as a chain
    site.page.context.set_offline(False)
    done = site.wait_outbox(["accepted", "accepted"])
    assert "Accepted by the ledger (entry #" in done[0]["text"]
    site.shot("outbox-sent")
    events = verify_tag_with_reference(live_ledger.http, TAG)
    assert [e["type"] for e in events] == ["tags_issued", "tag_attached", "custody_dispatched"]
    attach, dispatch = (e["envelope"]["body"] for e in events[1:])
    assert attach["key"] == dispatch["key"] == site_kid and attach["actor"] == SITE
    assert attach["data"] == {"site": SITE, "mineral": "tin", "mass_g": 50_200, "pit": "Pit 7",
                              "gps": {"lat": "-2.1234567", "lon": "28.7654321"}}
    assert dispatch["prev"] == events[1]["hash"] and dispatch["data"] == {"to": TRADER}
    assert dispatch["time"] >= attach["time"]  # each signed when it was done
    assert "RESULT: OK" in cli.audit()  # the independent auditor (verification/) replays the whole log

    # the recipient, on its own phone (in Swahili), sees it coming and receives it
    caught_up(live_ledger)
    trader.sync(live_ledger.entries())
    incoming = trader.page.inner_text("#incoming")
    assert TAG in incoming and "Inakuja kwangu (1)" in incoming
    trader.record("receive", tag=TAG, mass="50.1")
    trader.wait_outbox(["accepted"])
    trader.sync()
    assert TAG in trader.page.inner_text("#held")
    trader.until(f"() => document.querySelector('#held li[data-tag=\"{TAG}\"] .badge.ok') !== null")
    trader.shot("custody-sw")
    assert "sahihi zimekaguliwa kwenye simu hii" in trader.page.inner_text("#held")
    state = live_ledger.http.get(f"/v1/tags/{TAG}").json()["state"]
    assert (state["status"], state["holder"], state["mass_g"]) == ("in_custody", TRADER, 50_100)
    assert verify_tag_with_reference(live_ledger.http, TAG)[-1]["envelope"]["body"]["actor"] == TRADER
    assert site.errors == [] and trader.errors == []


def test_conflict_and_revoked_key_in_plain_words(phones, live_ledger, cli) -> None:
    site = phones("site")
    register(cli, site, SITE, "site", "Kalimbi Zea site")
    authority = live_ledger.register("customs-bukavu", "authority")
    cli("tags", "issue", SITE, "--tag", TAG, "--tag", OTHER)
    caught_up(live_ledger)
    site.sync()
    site.record("attach", tag=TAG, mineral="cobalt", mass="20", pit="P2")
    site.wait_outbox(["accepted"])

    # offline, the site voids the bag; meanwhile customs scan it: the void names a head that is no longer the last
    site.page.context.set_offline(True)
    site.record("void", tag=TAG, reason="damaged")
    authority.scan(TAG, gps={"lat": "-2.5", "lon": "28.8"}, purpose="customs")
    site.page.context.set_offline(False)
    [conflict, _] = site.wait_outbox(["conflict", "accepted"])
    assert conflict["rule"] == "stream.conflict"
    assert "Not recorded: someone recorded something on this bag before this record arrived" in conflict["text"]
    assert "What to do: Look at the bag's history." in conflict["text"]
    site.page.click(f'li[data-id="{conflict["id"]}"] button.resign')  # sign again, on top of the scan
    site.wait_outbox(["accepted", "accepted"])
    assert live_ledger.http.get(f"/v1/tags/{TAG}").json()["state"]["status"] == "voided"

    # the operator revokes the phone's key; what the phone signs afterwards is refused, and it says why
    site.go("#/key")
    kid = site.page.inner_text("#kid")
    cli("org", "revoke-key", SITE, "--kid", kid, "--reason", "phone lost")
    site.record("attach", tag=OTHER, mineral="cobalt", mass="10", pit="P2")
    [refused, *_] = site.wait_outbox(["refused", "accepted", "accepted"])
    assert refused["rule"] == "key.revoked"
    assert ("Refused by the ledger: this phone's key was revoked: the ledger no longer accepts what it signs"
            in refused["text"])
    assert "These records must be recorded again by a registered key" in refused["text"]
    assert site.page.query_selector(f'li[data-id="{refused["id"]}"] button.again') is not None
    site.page.query_selector(f'li[data-id="{refused["id"]}"]').scroll_into_view_if_needed()
    site.shot("refused", top=False)
    # a new key on the phone, registered by the operator; the same record is made again, and accepted
    site.page.once("dialog", lambda dialog: dialog.accept())
    public_key, _ = site.make_key(SITE)
    cli("org", "add-key", SITE, "--public-key", public_key)
    site.go("#/outbox")
    site.page.click(f'li[data-id="{refused["id"]}"] button.again')
    statuses = [r["status"] for r in site.wait_outbox(["accepted", "replaced", "accepted", "accepted"])]
    assert statuses[0] == "accepted"
    assert live_ledger.http.get(f"/v1/tags/{OTHER}").json()["state"]["status"] == "in_custody"
    assert site.errors == []


def qr_video(png: bytes, path: Path, frames: int = 20) -> Path:
    """A Y4M video (what --use-file-for-fake-video-capture reads) showing the label's QR code, still."""
    width, height = 640, 480
    code = Image.open(io.BytesIO(png)).convert("L")
    side = min(height - 40, code.width)
    frame = Image.new("L", (width, height), 255)
    frame.paste(code.resize((side, side), Image.NEAREST), ((width - side) // 2, (height - side) // 2))
    luma = frame.tobytes()
    chroma = bytes([128]) * ((width // 2) * (height // 2))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + luma + chroma + chroma)
    return path


def test_scan_a_label_with_the_camera(playwright_driver, chromium_binary, live_ledger, cli, tmp_path) -> None:
    cli("org", "register", SITE, "--name", "Kalimbi Zea site", "--role", "site", "--country", "CD", "--public-key",
        KeyPair.generate().public_key)
    cli("tags", "issue", SITE, "--tag", TAG)
    cli("tags", "labels", "--tag", TAG)
    png = live_ledger.http.get(f"/v1/tags/{TAG}/qr.png", params={"scale": 6})
    assert png.status_code == 200
    video = qr_video(png.content, tmp_path / "label.y4m")
    browser = playwright_driver.chromium.launch(executable_path=chromium_binary, args=[
        *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}"])
    try:
        context = browser.new_context(**context_options())
        context.grant_permissions(["camera"], origin=live_ledger.url)
        phone = Phone(context.new_page(), live_ledger.url, "checker")
        phone.open("/app/#/check")
        # no key needed to check a tag; on start the app keeps the operator's keys and the ledger's origin
        phone.until("() => import('/app/js/db.js').then(m => m.setting('labels')).then(l => Boolean(l?.origin))")
        phone.page.click("#check-scan")
        phone.page.wait_for_selector("#check-result .tagid")
        assert phone.page.input_value("#check-tag") == TAG
        assert phone.page.get_attribute("[data-label]", "data-label") == "valid"
        assert "Label genuine: signed by the operator for this tag." in phone.text()
        assert "signatures checked on this phone" in phone.page.inner_text("#check-result")
        # headless Chromium has no BarcodeDetector: the WebAssembly decoder did it
        decoder = phone.page.evaluate("import('/app/js/scanner.js').then(m => m.decoder()).then(d => d.name)")
        assert decoder == "zxing-wasm"
        assert phone.page.evaluate("'BarcodeDetector' in window") is False
        assert phone.errors == []
    finally:
        browser.close()


def _start_chromium(binary: str, profile: Path) -> tuple[subprocess.Popen, str]:
    port_file = profile / "DevToolsActivePort"
    port_file.unlink(missing_ok=True)
    process = subprocess.Popen([binary, "--headless", "--no-sandbox", *CHROMIUM_ARGS, "--remote-debugging-port=0",
                                "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            _kill(process)
            raise RuntimeError("chromium did not open its DevTools port")
        time.sleep(0.05)
    return process, f"http://127.0.0.1:{port_file.read_text().split()[0]}"


def _kill(process: subprocess.Popen) -> None:
    """SIGKILL the browser and every process it started (its own session): what a phone does to a killed app."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def a_new_version() -> routes_app.AppFiles:
    """The app as published after an update: one module changed, so a new version and a new service worker."""
    files = routes_app.app_files()
    assets = dict(files.assets)
    main = assets["/app/js/main.js"]
    assets["/app/js/main.js"] = routes_app._asset(main.body + b"\n// an update\n", ".js")
    version = files.version[::-1]
    worker = assets["/app/sw.js"].body.replace(files.version.encode(), version.encode())
    assets["/app/sw.js"] = routes_app._asset(worker, ".js")
    return routes_app.AppFiles(assets, files.shell, version)


def test_killed_browser_keeps_its_outbox(playwright_driver, chromium_binary, live_ledger, cli, tmp_path,
                                         monkeypatch) -> None:
    new_version = a_new_version()
    profile = tmp_path / "profile"
    profile.mkdir()
    process, endpoint = _start_chromium(chromium_binary, profile)
    try:
        browser = playwright_driver.chromium.connect_over_cdp(endpoint)
        context = browser.contexts[0]
        phone = Phone(context.new_page(), live_ledger.url, "site")
        phone.open()
        register(cli, phone, SITE, "site", "Kalimbi Zea site")
        cli("tags", "issue", SITE, "--tag", TAG, "--tag", OTHER)
        caught_up(live_ledger)
        phone.sync()
        context.set_offline(True)
        phone.record("attach", tag=TAG, mineral="tantalum", mass="31", pit="P9")
        phone.record("attach", tag=OTHER, mineral="tantalum", mass="32", pit="P9")
        assert phone.waiting(2) == 2
    finally:
        _kill(process)  # no goodbye: the browser is gone, as when a phone kills the app or loses power
    assert live_ledger.http.get(f"/v1/tags/{TAG}").json()["state"]["status"] == "issued"

    process, endpoint = _start_chromium(chromium_binary, profile)
    try:
        browser = playwright_driver.chromium.connect_over_cdp(endpoint)
        context = browser.contexts[0]
        context.set_offline(True)  # start with no network, to see the outbox as it was left
        phone = Phone(context.new_page(), live_ledger.url, "site")
        phone.open()
        assert [r["status"] for r in phone.outbox()] == ["waiting", "waiting"]
        old = phone.page.evaluate("caches.keys()")
        # meanwhile a new version of the app is published; the network comes back: the records go, the app updates
        monkeypatch.setattr(routes_app, "app_files", lambda: new_version)
        context.set_offline(False)
        phone.until(f"() => caches.keys().then(k => k.includes('tagledger-app-{new_version.version}') && "
                    f"!k.includes('{old[0]}'))")
        phone.ready()
        phone.wait_outbox(["accepted", "accepted"])
        for tag in (TAG, OTHER):
            assert verify_tag_with_reference(live_ledger.http, tag)[-1]["type"] == "tag_attached"
        browser.close()
    finally:
        _kill(process)


def test_incident_with_a_photo_and_a_site_visit(phones, live_ledger, cli, tmp_path) -> None:
    """A field monitor reports an incident with a photo: only the photo's hash is in the signed event, the description
    goes sealed (protocol 16.2) once the report is accepted; then the month's site visit."""
    live_ledger.register(SITE, "site", name="Kalimbi Zea site")
    monitor = phones("monitor", locale="fr-CD")
    register(cli, monitor, "better-mining", "monitor", "Better Mining")
    caught_up(live_ledger)
    monitor.sync()
    photo = tmp_path / "pit3.png"
    Image.new("RGB", (64, 48), (120, 80, 40)).save(photo)
    monitor.go("#/record/incident")
    monitor.page.set_input_files("#f-photos", str(photo))
    monitor.record("incident", shot="incident-fr", site=SITE, category="child_labour", severity="high",
                   summary="Mineurs au puits 3",
                   description="Deux enfants portaient du minerai au puits 3, vers 10 h.", people="2", gps=True)
    [report] = monitor.wait_outbox(["accepted"])
    assert "Détails confidentiels transmis pour les lecteurs autorisés." in report["text"]
    incident = monitor.page.evaluate(
        "import('/app/js/db.js').then(m => m.outboxItems()).then(i => i[0].summary.incident)")
    public = live_ledger.http.get(f"/v1/incidents/{incident}").json()
    assert public["access"] == "public" and "details" not in public
    assert [e["sha256"] for e in public["evidence"]] == [hashlib.sha256(photo.read_bytes()).hexdigest()]
    assert public["category"] == "child_labour" and public["red_flag"] is True and public["people_affected"] == 2
    [sealed] = live_ledger.ledger.store.read_sealed_details(incident)
    details = json.loads(sealed.data)
    assert details["description"] == "Deux enfants portaient du minerai au puits 3, vers 10 h."
    assert details["gps"] == {"lat": "-2.1234567", "lon": "28.7654321"}
    assert sealed.sha256 == public["details_sha256"] == hashlib.sha256(sealed.data).hexdigest()
    assert "Mineurs au puits 3" == public["summary"] and "enfants" not in json.dumps(public)
    # the photo itself goes up sealed (protocol 16.2): only an authorised reader gets it back
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    deadline = time.monotonic() + 20
    while live_ledger.ledger.sealed_evidence(incident, digest) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    path = f"/v1/incidents/{incident}/evidence/{digest}"
    got = live_ledger.http.get(path, headers={"Authorization": read_authorization("itsci", live_ledger.root, path)})
    assert got.status_code == 200 and got.content == photo.read_bytes()
    assert live_ledger.http.get(path).status_code == 401
    monitor.go("#/outbox")
    monitor.page.wait_for_function("document.body.innerText.includes('Photos transmises, scellées')")

    monitor.record("visit", site=SITE, price_paid="9,5", reference_price="12", women="12", men="40")
    monitor.wait_outbox(["accepted", "accepted"])
    [visit] = live_ledger.http.get(f"/v1/sites/{SITE}/risk").json()["monitoring"]
    assert visit["price_paid"] == {"currency": "USD", "minor_per_kg": 950}
    assert visit["workforce"] == {"women": 12, "men": 40} and visit["price_ratio"] == "0.792"
    assert monitor.errors == []


def test_lot_split_and_consume_at_the_refinery(phones, live_ledger, cli) -> None:
    """A refiner receives two bags, makes a lot of them, splits it, and processes one part."""
    site = live_ledger.register(SITE, "site")
    refinery = phones("refinery")
    register(cli, refinery, "be-refinery", "refiner", "Refinery BE")
    cli("tags", "issue", SITE, "--tag", TAG, "--tag", OTHER)
    cli("tags", "issue", "be-refinery", "--tag", "LOT-000001", "--tag", "OUT-000001", "--tag", "OUT-000002")
    for tag, grams in ((TAG, 30_000), (OTHER, 20_000)):
        site.attach(tag, mineral="tungsten", mass_g=grams, pit="P4")
        site.dispatch(tag, "be-refinery")
    caught_up(live_ledger)
    refinery.sync(live_ledger.entries())  # as of the dispatches: a sync started before them may end meanwhile
    try:  # the custody read is stored; the home screen is redrawn from it a moment later
        refinery.until("() => document.querySelector('#incoming')?.innerText.includes('(2)')")
    except TimeoutError:
        pass
    stored = refinery.page.evaluate("import('/app/js/db.js').then(m => m.setting('custody'))")
    assert "(2)" in refinery.page.inner_text("#incoming"), f"stored custody read: {stored}"
    refinery.record("receive", tag=TAG, mass="30")
    refinery.record("receive", tag=OTHER, mass="19.990")
    refinery.wait_outbox(["accepted", "accepted"])
    caught_up(live_ledger)
    refinery.sync(live_ledger.entries())
    refinery.record("merge", tag="LOT-000001", inputs=[TAG, OTHER])  # the lot's mass is their sum: 49.990 kg
    refinery.record("split", tag="LOT-000001", outputs=[("OUT-000001", "25"), ("OUT-000002", "24,99")])
    refinery.record("consume", tag="OUT-000001", product="tungsten concentrate")
    refinery.wait_outbox(["accepted"] * 5)
    view = lambda tag: live_ledger.http.get(f"/v1/tags/{tag}").json()  # noqa: E731
    lot = view("LOT-000001")
    assert lot["state"]["inputs"] == [TAG, OTHER] and lot["state"]["status"] == "split"
    formed = next(e for e in lot["events"] if e["type"] == "lot_formed")["envelope"]["body"]
    assert formed["data"] == {"inputs": [TAG, OTHER], "mass_g": 49_990}
    assert set(formed["links"]) == {f"tag:{TAG}", f"tag:{OTHER}"}
    assert lot["state"]["outputs"] == ["OUT-000001", "OUT-000002"]
    assert view("OUT-000001")["state"]["status"] == "consumed"
    assert (view("OUT-000002")["state"]["status"], view("OUT-000002")["state"]["mass_g"]) == ("in_custody", 24_990)
    for tag in ("LOT-000001", "OUT-000001", TAG):
        verify_tag_with_reference(live_ledger.http, tag)
    assert refinery.errors == []


def test_key_stays_on_the_phone_qr_backup_and_restore(phones, tmp_path) -> None:
    """The private key cannot be read by any script; the public key's QR code decodes to it; a passphrase backup
    restores the same key on another phone, and a wrong passphrase is refused in plain words."""
    import zxingcpp

    old = phones("old phone")
    public_key, kid = old.make_key(SITE, passphrase="kalimbi pit seven 2026")
    with old.page.expect_download() as saved:
        old.page.click("text=Save the backup file again")
    backup = tmp_path / "backup.json"
    saved.value.save_as(backup)
    document = json.loads(backup.read_text())
    assert (document["format"], document["kid"], document["public_key"]) == ("tagledger/key-backup/v1", kid, public_key)
    assert document["kdf"] == {**document["kdf"], "name": "PBKDF2", "hash": "SHA-256", "iterations": 600_000}
    assert "private" not in json.dumps(document).lower()
    # the key in IndexedDB signs, and cannot be exported, even by the app itself
    assert old.page.evaluate("""() => import('/app/js/keys.js').then(m => m.currentKey()).then(async (k) => {
        try { await crypto.subtle.exportKey('pkcs8', k.privateKey); return 'exported'; }
        catch (e) { return [k.privateKey.extractable, e.name]; } })""") == [False, "InvalidAccessError"]
    shot = tmp_path / "qr.png"
    old.page.eval_on_selector(".qr", "e => e.scrollIntoView({block: 'center'})")  # not under the sticky bar
    old.page.locator(".qr svg").screenshot(path=str(shot))
    [code] = zxingcpp.read_barcodes(Image.open(shot))
    assert code.text == public_key

    new = phones("new phone")
    new.go("#/key")
    new.page.set_input_files("#restore-key [name=file]", str(backup))
    new.page.fill("#restore-key [name=passphrase]", "not the passphrase")
    new.page.click("#restore-key button")
    new.page.wait_for_selector("#key-message .notice.bad")
    assert new.text("#key-message") == "Wrong passphrase, or a damaged file."
    new.page.fill("#restore-key [name=passphrase]", "kalimbi pit seven 2026")
    new.page.click("#restore-key button")
    new.page.wait_for_selector("#kid")
    assert (new.page.inner_text("#kid"), new.page.inner_text("#key-org")) == (kid, SITE)
    assert new.page.evaluate(
        "() => import('/app/js/keys.js').then(m => m.currentKey()).then(k => k.privateKey.extractable)") is False
    assert old.errors == [] and new.errors == []
