// The phone app's service worker: keeps the app's files on the phone so that it starts with no network.
// Served by api/routes_app.py, which fills in VERSION (a hash of every file of the app) and SHELL (the files to
// install). A new version installs its own cache and deletes the old one; the app's data (keys, outbox, cached
// custody) is in IndexedDB and is never touched here.
const VERSION = "__VERSION__";
const SHELL = "__SHELL__";
const DECODER = "__DECODER__"; // the WebAssembly QR decoder: kept once fetched, not installed up front
const SHELL_CACHE = `tagledger-app-${VERSION}`;
const DECODER_CACHE = `tagledger-decoder-${VERSION}`;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(SHELL_CACHE)
      .then((cache) => cache.addAll(SHELL.map((url) => new Request(url, { cache: "reload" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((name) => name.startsWith("tagledger-") && name !== SHELL_CACHE &&
                                                            name !== DECODER_CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

async function fromCache(request, cacheName, fallbackUrl) {
  const cache = await caches.open(cacheName);
  const hit = await cache.match(fallbackUrl ?? request, { ignoreSearch: true });
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok && cacheName === DECODER_CACHE) await cache.put(request, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !url.pathname.startsWith("/app/")) {
    return; // the ledger's API: straight to the network (the app keeps what it needs in IndexedDB)
  }
  if (url.pathname.startsWith(DECODER)) {
    event.respondWith(fromCache(event.request, DECODER_CACHE));
  } else if (event.request.mode === "navigate") {
    event.respondWith(fromCache(event.request, SHELL_CACHE, "/app/"));
  } else if (SHELL.includes(url.pathname)) {
    event.respondWith(fromCache(event.request, SHELL_CACHE));
  }
});
