// Start the app: the language, the screens, the service worker (offline after the first load), and sending the
// outbox whenever the network comes back.
import { setting } from "./db.js";
import { useLanguage } from "./i18n.js";
import { drawBar, drawLanguages } from "./frame.js";
import { route } from "./router.js";
import { syncNow } from "./session.js";

const SYNC_EVERY_MS = 60000;

async function start() {
  await useLanguage(await setting("lang"));
  drawLanguages();
  await drawBar();
  await route();
  window.addEventListener("hashchange", () => route());
  window.addEventListener("offline", () => drawBar());
  let registration = null;
  window.addEventListener("online", () => {
    syncNow().catch(() => drawBar());
    registration?.update().catch(() => {}); // a new version may have been published meanwhile
  });
  if ("serviceWorker" in navigator) {
    const updating = Boolean(navigator.serviceWorker.controller);
    navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" }).then((r) => {
      registration = r;
    }).catch(() => {});
    // a new version took over: start it, unless a form is open (it will start on the next visit)
    navigator.serviceWorker.addEventListener("controllerchange", () => {
      if (updating && !location.hash.startsWith("#/record")) location.reload();
    });
  }
  // ask the browser not to clear the outbox and keys under storage pressure
  navigator.storage?.persist?.().catch(() => {});
  if (navigator.onLine) syncNow().catch(() => drawBar());
  setInterval(() => {
    if (navigator.onLine) syncNow().catch(() => drawBar());
  }, SYNC_EVERY_MS);
  document.body.dataset.ready = "1";
}

start();
