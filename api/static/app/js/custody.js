// "My custody": the tags this organisation holds, those on their way to it, those it sent, each with its
// verification status. Read from the ledger when there is a network (GET /v1/orgs/{org}/custody, and each tag's
// GET /v1/tags/{id}, whose signatures and hash links the phone checks itself), kept in IndexedDB for offline use.
import { db, outboxItems, setSetting, setting } from "./db.js";
import { ledger, Offline } from "./api.js";
import { learnHeads } from "./outbox.js";
import { b64urlDecode, envelopeHash, verifyEnvelope } from "./protocol.js";

const VERIFY_AT_ONCE = 30;

/** Bring what the phone keeps up to date. Throws Offline when there is no network. */
export async function refresh() {
  const [orgs, logKey] = await Promise.all([ledger.orgs(), ledger.logKey()]);
  if (orgs.status === 200) await setSetting("orgs", orgs.body.orgs);
  if (logKey.status === 200) await refreshLabelKeys(logKey.body);
  const org = await setting("org");
  if (!org) return null;
  const sentBefore = (await outboxItems())
    .filter((i) => i.type === "custody_dispatched" && i.status === "accepted").map((i) => i.summary.tag);
  const custody = await ledger.custody(org, [...new Set(sentBefore)].slice(-200));
  if (custody.status !== 200) return null;
  const snapshot = { ...custody.body, at: new Date().toISOString() };
  await setSetting("custody", snapshot);
  const heads = [];
  const tx = (await db()).transaction("tags", "readwrite");
  for (const state of [...snapshot.held, ...snapshot.incoming, ...snapshot.sent, ...snapshot.asked]) {
    heads.push({ stream: `tag:${state.tag}`, hash: state.head.hash, seq: state.head.seq, time: state.last_time });
    const known = await tx.store.get(state.tag);
    await tx.store.put({ ...known, tag: state.tag, state });
  }
  await tx.done;
  for (const group of snapshot.issued) {
    for (const tag of group.tags) heads.push({ stream: `tag:${tag}`, hash: group.head.hash, seq: group.head.seq, time: group.time });
  }
  await learnHeads(heads);
  return snapshot;
}

/** The operator's keys and the ledger's origin, so that a scanned label is checked even with no network. */
async function refreshLabelKeys(logKey) {
  if (!logKey.operator) return;
  const operator = await ledger.org(logKey.operator);
  if (operator.status !== 200) return;
  const keys = {};
  for (const key of operator.body.keys) keys[key.kid] = key.public_key;
  await setSetting("labels", { origin: logKey.origin, operator: logKey.operator, keys });
}

/**
 * Check a tag view on the phone: every event's hash is sha256(jcs(envelope)), its signature verifies with the key
 * the view names, the first event is the `tags_issued` that created the tag and each later one names the one
 * before it. (The inclusion proofs are left to `tagledger audit`.) Returns {ok, problems, verdict, flags}.
 */
export async function verifyDocument(document) {
  const problems = [];
  const stream = `tag:${document.tag}`;
  let previous = null;
  for (const [index, event] of (document.events ?? []).entries()) {
    const body = event.envelope?.body ?? {};
    const hash = await envelopeHash(event.envelope);
    if (hash !== event.hash) problems.push(`#${event.seq}: hash`);
    const key = document.keys?.[body.key];
    let signed = false;
    try {
      signed = Boolean(key) && (await verifyEnvelope(event.envelope, b64urlDecode(key.public_key, 32)));
    } catch { /* a malformed key is a failed check */ }
    if (!signed) problems.push(`#${event.seq}: signature`);
    const named = body.stream === stream ? body.prev : body.links?.[stream];
    if (index === 0 ? body.type !== "tags_issued" : named !== previous) problems.push(`#${event.seq}: link`);
    previous = hash;
  }
  return { ok: problems.length === 0 && (document.events ?? []).length > 0, problems,
           verdict: document.verdict?.code ?? null, flags: (document.flags ?? []).length };
}

/** The last event of a tag as the phone knows it: from its own accepted records, else from the ledger's view. */
async function currentHead(tag, known) {
  const head = await (await db()).get("heads", `tag:${tag}`);
  return head && !head.pending ? head.hash : known?.state?.head?.hash ?? null;
}

/** Fetch and check the tags shown whose history changed since they were last checked (at most a few at once). */
export async function verifyShown(tags) {
  let checked = 0;
  for (const tag of tags) {
    if (checked >= VERIFY_AT_ONCE) break;
    const known = await (await db()).get("tags", tag);
    if (known?.verification && known.verification.head === (await currentHead(tag, known))) continue;
    let answer;
    try {
      answer = await ledger.tag(tag);
    } catch (error) {
      if (error instanceof Offline) return checked;
      throw error;
    }
    if (answer.status !== 200) continue;
    const verification = { ...(await verifyDocument(answer.body)), at: new Date().toISOString(),
                           head: answer.body.state?.head?.hash ?? null };
    await (await db()).put("tags", { ...known, tag, state: answer.body.state, verification });
    checked++;
  }
  return checked;
}

/**
 * The three lists, from the last snapshot and what is waiting in the outbox: [{tag, state, verification, waiting,
 * via}] for `held`, `incoming` and `sent`.
 */
export async function lists() {
  const snapshot = (await setting("custody")) ?? { held: [], incoming: [], sent: [], asked: [], issued: [] };
  const known = new Map((await (await db()).getAll("tags")).map((row) => [row.tag, row]));
  const heads = new Map((await (await db()).getAll("heads")).map((head) => [head.stream, head]));
  // a check counts only for the history it checked: a newer event makes the tag "not checked yet" again
  const checked = (tag) => {
    const verification = known.get(tag)?.verification ?? null;
    const head = heads.get(`tag:${tag}`);
    const current = head && !head.pending ? head.hash : known.get(tag)?.state?.head?.hash;
    return verification && verification.head === current ? verification : null;
  };
  const row = (state, extra = {}) => ({ tag: state.tag, state, verification: checked(state.tag), waiting: false, ...extra });
  const held = new Map(snapshot.held.map((s) => [s.tag, row(s)]));
  const incoming = new Map(snapshot.incoming.map((s) => [s.tag, row(s)]));
  const sent = new Map(snapshot.sent.map((s) => [s.tag, row(s)]));
  for (const state of snapshot.asked) {
    if (!held.has(state.tag) && !incoming.has(state.tag)) sent.set(state.tag, row(state));
  }
  // what the ledger's custody view does not show yet: records waiting to be sent, and records accepted after the
  // view was read (the projection follows the log a moment behind)
  const position = snapshot.projection_position ?? 0;
  const org = await setting("org");
  for (const item of await outboxItems()) {
    const waiting = item.status === "waiting";
    if (!waiting && !(item.status === "accepted" && item.result?.receipt?.seq >= position)) continue;
    const s = item.summary ?? {};
    const before = known.get(s.tag)?.state ?? {};
    // the tag as this record leaves it, until the ledger's view shows it
    const row = (tag, state) => ({ tag, state: { ...state, tag }, verification: waiting ? null : checked(tag), waiting, item });
    const holding = (tag, mass_g, extra = {}) => row(tag, { ...(known.get(tag)?.state ?? {}), status: "in_custody",
                                                            holder: org, pending_recipient: null, mass_g, ...extra });
    if (item.type === "tag_attached" || item.type === "custody_received") {
      incoming.delete(s.tag);
      held.set(s.tag, holding(s.tag, s.mass_g));
    } else if (item.type === "custody_dispatched") {
      held.delete(s.tag);
      sent.set(s.tag, row(s.tag, { ...before, status: "in_transit", holder: org, pending_recipient: s.to,
                                   mass_g: s.mass_g ?? before.mass_g }));
    } else if (item.type === "tag_consumed" || item.type === "tag_voided") {
      held.delete(s.tag);
    } else if (item.type === "lot_formed") {
      for (const input of s.inputs ?? []) held.delete(input);
      held.set(s.tag, holding(s.tag, s.mass_g, { inputs: s.inputs }));
    } else if (item.type === "lot_split") {
      held.delete(s.tag);
      for (const output of s.outputs ?? []) held.set(output, holding(output, s.masses?.[output] ?? null, { parent: s.tag }));
    }
  }
  return { held: [...held.values()], incoming: [...incoming.values()], sent: [...sent.values()],
           at: snapshot.at ?? null, issued: snapshot.issued.flatMap((g) => g.tags) };
}
