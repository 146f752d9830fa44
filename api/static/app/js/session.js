// Who this phone records for, and sending: the outbox, then what the phone keeps (custody, organisations, label
// keys), each tag shown checked, the key's registration; then the screen is drawn again.
import { setSetting, setting } from "./db.js";
import { ledger, Offline } from "./api.js";
import { currentKey } from "./keys.js";
import { sync } from "./outbox.js";
import { lists, refresh, verifyShown } from "./custody.js";
import { prepareOffline } from "./scanner.js";
import { drawBar } from "./frame.js";
import { route } from "./router.js";

export async function profile() {
  return { org: await setting("org"), role: await setting("role"), name: await setting("orgName"), key: await currentKey() };
}

export function orgName(orgs, id) {
  return orgs.find((o) => o.id === id)?.name ?? id;
}

let lastReport = null;

/** What the last sending said: {sent, accepted, failed, offline, error}. */
export function lastSync() {
  return lastReport;
}

export async function syncNow(visible = false) {
  let report = null;
  try {
    report = await sync();
    await refresh();
    const custody = await lists();
    await verifyShown([...custody.held, ...custody.incoming, ...custody.sent].filter((r) => !r.waiting).map((r) => r.tag));
    await checkRegistration();
    prepareOffline().catch(() => {});
  } catch (error) {
    if (!(error instanceof Offline)) throw error;
    report = { ...(report ?? {}), offline: true };
  }
  lastReport = report;
  await drawBar();
  if (visible || ["", "#/", "#/outbox"].includes(location.hash)) await route();
  return report;
}

export async function checkRegistration() {
  const me = await profile();
  if (!me.key || !me.org) return;
  const answer = await ledger.org(me.org);
  let status = "unknown_org";
  if (answer.status === 200) {
    const key = answer.body.keys.find((k) => k.kid === me.key.kid);
    status = !key ? "not_registered" : key.revoked_from ? "revoked" : "registered";
    await setSetting("role", answer.body.role);
    await setSetting("orgName", answer.body.name);
  }
  await setSetting("registration", { status, at: new Date().toISOString() });
}
