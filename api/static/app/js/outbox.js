// Recording and sending. An event is signed on the phone when the act happens (its `time` is that moment) and put
// in the outbox, in IndexedDB, with the exact bytes that will be sent; it is "waiting to send" until the ledger
// has answered for it. Stream heads are kept on the phone, so that records made offline link to each other (an
// attachment, then the dispatch of the same bag: the dispatch names the attachment's hash).
//
// Sending is POST /v1/events/batch with the stored bytes, in recording order; each item gets its own answer.
// Sending the same bytes again is harmless (the ledger answers 200 with the first receipt), so an answer lost to a
// dropped connection costs nothing: the item is simply sent again.
import { db, outboxItems, setting } from "./db.js";
import { ledger, Offline, postBatch, putDetails, putEvidence } from "./api.js";
import { currentKey } from "./keys.js";
import { canonical, envelopeHash, formatTime, makeBody, signBody } from "./protocol.js";

export const BATCH = 200;
const FAILED = new Set(["refused", "conflict", "blocked", "discarded", "replaced"]);

export class NotOnPhone extends Error {
  constructor(stream) {
    super(stream);
    this.stream = stream;
  }
}
export class NoKey extends Error {}

let counter = 0;
function nextOrder() {
  counter = (counter + 1) % 1000;
  return Date.now() * 1000 + counter;
}

/** The hash the next record on `stream` must name: a record of ours not sent yet, else the ledger's head as last
 * seen, else (online) asked now. `empty`: the stream may exist with no event yet (a site's monitoring record). */
export async function headOf(stream, { empty = false } = {}) {
  const known = await (await db()).get("heads", stream);
  if (known) return known;
  let answer;
  try {
    answer = await ledger.head(stream);
  } catch (error) {
    if (error instanceof Offline) throw new NotOnPhone(stream);
    throw error;
  }
  if (answer.status === 404 && empty) return { stream, hash: null, seq: null, pending: false, item: null };
  if (answer.status !== 200) throw new NotOnPhone(stream);
  const head = { stream, hash: answer.body.hash, seq: answer.body.seq, time: answer.body.time, pending: false, item: null };
  await (await db()).put("heads", head);
  return head;
}

/** Keep heads the ledger gave (its custody projection, or a receipt), unless ours is newer or not sent yet. */
export async function learnHeads(heads) {
  const store = (await db()).transaction("heads", "readwrite").store;
  for (const head of heads) {
    const known = await store.get(head.stream);
    if (known && (known.pending || (known.seq ?? -1) > (head.seq ?? -1))) continue;
    await store.put({ ...head, pending: false, item: null });
  }
  await store.transaction.done;
}

/**
 * Sign and keep one event. `streams`: the streams it joins other than the primary one (`links`); `creates`: the
 * primary stream is created by this event (its `prev` is null); `empty`: the primary stream may have no event yet.
 * Returns the outbox item.
 */
export async function record({ type, stream, links = [], data, summary = {}, creates = false, empty = false,
                               details = null, evidence = [] }) {
  const key = await currentKey();
  if (!key) throw new NoKey();
  const org = await setting("org");
  const joins = {};
  const after = {};
  for (const name of [stream, ...links]) {
    if (creates && name === stream) {
      joins[name] = null;
      continue;
    }
    const head = await headOf(name, { empty: empty && name === stream });
    joins[name] = head.hash;
    if (head.pending && head.item) after[name] = head.item;
  }
  const body = makeBody({
    type, stream, prev: joins[stream], actor: org, key: key.kid, time: formatTime(new Date()), data,
    links: links.length ? Object.fromEntries(links.map((name) => [name, joins[name]])) : undefined,
  });
  return keepSigned({ id: body.id, order: nextOrder(), type, summary, joins, after, details, evidence, creates, empty },
                    body, key.privateKey);
}

async function keepSigned(item, body, privateKey) {
  const envelope = await signBody(privateKey, body);
  const text = canonical(envelope);
  const hash = await envelopeHash(envelope);
  const full = {
    ...item, text, hash, kid: body.key, time: body.time, status: "waiting", result: null, detailsSent: false,
    recordedAt: item.recordedAt ?? new Date().toISOString(),
  };
  const tx = (await db()).transaction(["outbox", "heads"], "readwrite");
  await tx.objectStore("outbox").put(full);
  for (const stream of Object.keys(full.joins)) {
    await tx.objectStore("heads").put({ stream, hash, seq: null, time: body.time, pending: true, item: full.id });
  }
  await tx.done;
  return full;
}

function dependsOn(item) {
  return Object.values(item.after ?? {});
}

/** After a record failed: the streams it joined go back to the head it named (or to the record it followed). */
async function unwind(tx, item) {
  const heads = tx.objectStore("heads");
  for (const [stream, prev] of Object.entries(item.joins)) {
    if ((await heads.get(stream))?.item !== item.id) continue;
    const before = item.after?.[stream] ?? null;
    if (prev === null) await heads.delete(stream); // it was the first on that stream: ask the ledger next time
    else await heads.put({ stream, hash: prev, seq: null, time: null, pending: Boolean(before), item: before });
  }
}

let running = null;

/** Send everything waiting, in recording order, in batches. Returns {sent, accepted, failed, offline, error}. */
export function sync() {
  running ??= doSync().finally(() => {
    running = null;
  });
  return running;
}

async function doSync() {
  const report = { sent: 0, accepted: 0, failed: 0, offline: false, error: null };
  for (;;) {
    const items = await outboxItems();
    const failed = new Set(items.filter((i) => FAILED.has(i.status)).map((i) => i.id));
    const batch = [];
    const tx = (await db()).transaction(["outbox", "heads"], "readwrite");
    for (const item of items) {
      if (item.status !== "waiting") continue;
      if (dependsOn(item).some((id) => failed.has(id))) {
        failed.add(item.id);
        await tx.objectStore("outbox").put({ ...item, status: "blocked" });
        await unwind(tx, item);
      } else if (batch.length < BATCH) {
        batch.push(item);
      }
    }
    await tx.done;
    if (!batch.length) break;
    let answer;
    try {
      answer = await postBatch(`[${batch.map((i) => i.text).join(",")}]`);
    } catch (error) {
      if (!(error instanceof Offline)) throw error;
      report.offline = true;
      break;
    }
    if (answer.status !== 200 || !Array.isArray(answer.body?.results)) {
      report.error = answer.status; // the batch as a whole was not judged: everything stays waiting
      break;
    }
    report.sent += batch.length;
    const done = (await db()).transaction(["outbox", "heads"], "readwrite");
    for (const [index, item] of batch.entries()) {
      const result = answer.body.results[index];
      if (result.status === 200 || result.status === 201) {
        report.accepted++;
        await done.objectStore("outbox").put({ ...item, status: "accepted", result });
        for (const stream of Object.keys(item.joins)) {
          const head = await done.objectStore("heads").get(stream);
          if (head?.item === item.id) {
            await done.objectStore("heads").put({ ...head, seq: result.receipt.seq, pending: false, item: null });
          }
        }
        continue;
      }
      report.failed++;
      const conflict = result.status === 409 && result.problem?.rule === "stream.conflict";
      const status = conflict && dependsOn(item).some((id) => failed.has(id)) ? "blocked" : conflict ? "conflict" : "refused";
      failed.add(item.id);
      await done.objectStore("outbox").put({ ...item, status, result });
      await unwind(done, item);
    }
    await done.done; // and round again: records made while this batch was on its way go too
  }
  if (!report.offline) await sendDetails(report);
  return report;
}

/** Sealed incident details and the photos the report names (protocol 16.2) go up once the report is accepted. */
async function sendDetails(report) {
  for (const item of await outboxItems()) {
    if (item.status !== "accepted") continue;
    try {
      if (item.details && !item.detailsSent) {
        const status = await putDetails(item.summary.incident, item.details);
        if (status === 200) await (await db()).put("outbox", { ...(await current(item)), detailsSent: true });
        else report.error ??= status;
      }
      for (const photo of item.evidence ?? []) {
        if ((item.photosSent ?? []).includes(photo.sha256)) continue;
        const status = await putEvidence(item.summary.incident, photo.sha256, photo.blob, photo.type);
        if (status !== 200) {
          report.error ??= status;
          continue;
        }
        const now = await current(item);
        await (await db()).put("outbox", { ...now, photosSent: [...(now.photosSent ?? []), photo.sha256] });
      }
    } catch (error) {
      if (error instanceof Offline) return;
      throw error;
    }
  }
}

async function current(item) {
  return (await (await db()).get("outbox", item.id)) ?? item;
}

/** The records that follow `root` (blocked on it, directly or not), in recording order. */
function chainFrom(items, root) {
  const chain = [root];
  const ids = new Set([root.id]);
  for (const item of items) {
    if (item.order > root.order && item.status === "blocked" && dependsOn(item).some((id) => ids.has(id))) {
      chain.push(item);
      ids.add(item.id);
    }
  }
  return chain;
}

/**
 * Sign a failed record again, with the records blocked behind it. `fresh` false ("Sign again", after a conflict):
 * the same event (id, time, key) on top of the ledger's current heads. `fresh` true ("Record again", e.g. after the
 * phone's key was revoked): a new event with the same content, recorded now with this phone's current key.
 */
export async function resign(id, { fresh = false } = {}) {
  const key = await currentKey();
  if (!key) throw new NoKey();
  const items = await outboxItems();
  const root = items.find((i) => i.id === id);
  const chain = chainFrom(items, root);
  const renamed = {};
  for (const item of chain) {
    const old = JSON.parse(item.text).body;
    const joins = {};
    const after = {};
    let latest = 0; // the time of the last event of the streams it joins: it may not be dated before it
    for (const stream of Object.keys(item.joins)) {
      const primary = stream === old.stream;
      if (item.creates && primary) {
        joins[stream] = null; // it creates its stream
        continue;
      }
      if (item === root) { // what the ledger holds now
        const answer = await ledger.head(stream);
        if (answer.status === 200) {
          await learnHeads([{ stream, hash: answer.body.hash, seq: answer.body.seq, time: answer.body.time }]);
        }
      }
      const head = await headOf(stream, { empty: item.empty && primary });
      joins[stream] = head.hash;
      if (head.pending && head.item) after[stream] = renamed[head.item] ?? head.item;
      latest = Math.max(latest, head.time ? Date.parse(head.time) : 0);
    }
    // the same moment, unless what was recorded in between is later: then it is signed as of now
    const time = fresh || Date.parse(old.time) <= latest ? formatTime(new Date()) : old.time;
    const body = makeBody({
      ...old, id: fresh ? crypto.randomUUID() : old.id, time,
      actor: fresh ? await setting("org") : old.actor, key: fresh ? key.kid : old.key, prev: joins[old.stream],
      links: old.links ? Object.fromEntries(Object.keys(old.links).map((s) => [s, joins[s]])) : undefined,
    });
    if (fresh) {
      await (await db()).put("outbox", { ...item, status: "replaced", replacedBy: body.id });
      renamed[item.id] = body.id;
    }
    await keepSigned({ ...item, id: body.id, order: fresh ? nextOrder() : item.order, joins, after,
                       replaces: fresh ? item.id : item.replaces }, body, key.privateKey);
  }
  return sync();
}

/** Give up a record that was refused, or is blocked behind one. */
export async function discard(id) {
  const tx = (await db()).transaction(["outbox", "heads"], "readwrite");
  const item = await tx.objectStore("outbox").get(id);
  await tx.objectStore("outbox").put({ ...item, status: "discarded" });
  await unwind(tx, item);
  await tx.done;
}

/** What the outbox holds, counted by status. */
export async function counts() {
  const counted = {};
  for (const item of await outboxItems()) counted[item.status] = (counted[item.status] ?? 0) + 1;
  return counted;
}
