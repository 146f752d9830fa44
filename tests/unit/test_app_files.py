"""The phone app's files (api/static/app/) as the server serves them: the shell's size, the service worker it
generates, and the vendored libraries, unchanged since scripts/vendor_app.sh copied them."""

from __future__ import annotations

import hashlib
import re

from api.routes_app import APP_DIR, SHELL_LIMIT_BYTES, app_files


def test_the_shell_stays_small() -> None:
    files = app_files()
    size = files.shell_gzip_bytes()
    assert 20_000 < size <= SHELL_LIMIT_BYTES, f"the app shell is {size} bytes gzipped"
    # everything the app imports is in the shell, except the WebAssembly decoder (loaded only where needed)
    assert {"/app/", "/app/js/main.js", "/app/js/protocol.js", "/app/vendor/idb/index.js", "/app/vendor/uqr/index.js",
            "/app/i18n/en.json", "/app/i18n/fr.json", "/app/i18n/sw.json", "/app/manifest.webmanifest",
            "/app/sw.js"} <= set(files.shell)
    assert not [p for p in files.shell if "zxing" in p]


def test_every_module_the_app_imports_is_served() -> None:
    files = app_files()
    modules = list(APP_DIR.joinpath("js").rglob("*.js"))
    assert len(modules) >= 15
    for path in modules:
        for target in re.findall(r'from "(\.{1,2}/[^"]+)"', path.read_text(encoding="utf-8")):
            url = "/app/" + (path.parent / target).resolve().relative_to(APP_DIR.resolve()).as_posix()
            assert url in files.assets and url in files.shell, (path.name, target)


def test_the_service_worker_names_its_version_and_files() -> None:
    files = app_files()
    worker = files.assets["/app/sw.js"].body.decode()
    assert f'const VERSION = "{files.version}";' in worker
    assert '"__SHELL__"' not in worker and '"/app/js/outbox.js"' in worker
    assert 'const DECODER = "/app/vendor/zxing-wasm/";' in worker


def test_vendored_files_are_the_published_ones() -> None:
    table = (APP_DIR / "vendor" / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"\| `([^`]+)` \| `([0-9a-f]{64})` \|", table)
    assert len(rows) == 5
    for path, digest in rows:
        assert hashlib.sha256((APP_DIR / "vendor" / path).read_bytes()).hexdigest() == digest, path
    for licence in ("idb/LICENSE", "uqr/LICENSE", "zxing-wasm/LICENSE", "zxing-wasm/LICENSE-zxing-cpp"):
        assert (APP_DIR / "vendor" / licence).stat().st_size > 500, licence
