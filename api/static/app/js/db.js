// The app's storage on the phone: one IndexedDB database (through the `idb` library), which survives reloads,
// app updates (the service worker never touches it), the browser being killed and the phone restarting.
//
//   settings  key -> value: language, organisation, its role and name, the ledger's origin and operator keys
//   keys      "current" (and older ones by kid): the Ed25519 CryptoKeys (the private one non-extractable)
//   outbox    signed records waiting to be sent, and what became of them (by event id, in recording order)
//   heads     stream -> the hash the next record on it must name (from the ledger, or from a record not sent yet)
//   tags      tag -> its last known state and verification on this phone ("My custody")
import { openDB } from "../vendor/idb/index.js";

export const DB_NAME = "tagledger";
const VERSION = 1;

let opened;

export function db() {
  opened ??= openDB(DB_NAME, VERSION, {
    upgrade(database) {
      database.createObjectStore("settings");
      database.createObjectStore("keys");
      const outbox = database.createObjectStore("outbox", { keyPath: "id" });
      outbox.createIndex("order", "order");
      database.createObjectStore("heads", { keyPath: "stream" });
      database.createObjectStore("tags", { keyPath: "tag" });
    },
  });
  return opened;
}

export async function setting(name, fallback = undefined) {
  const value = await (await db()).get("settings", name);
  return value === undefined ? fallback : value;
}

export async function setSetting(name, value) {
  await (await db()).put("settings", value, name);
}

/** Every outbox item in recording order. */
export async function outboxItems() {
  return (await db()).getAllFromIndex("outbox", "order");
}
