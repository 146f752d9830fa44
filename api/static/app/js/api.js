// The ledger's HTTP API, as the app uses it. Every call may fail for want of a network: `Offline` says so, and the
// app carries on with what it keeps on the phone.
export class Offline extends Error {}

async function call(path, options = {}) {
  try {
    return await fetch(path, { cache: "no-store", ...options });
  } catch {
    throw new Offline(path);
  }
}

/** GET a JSON document: {status, body} (body null when the answer is not JSON). */
export async function getJSON(path) {
  const response = await call(path, { headers: { Accept: "application/json" } });
  let body = null;
  try {
    body = await response.json();
  } catch { /* not JSON */ }
  return { status: response.status, body };
}

/** POST /v1/events/batch with the exact bytes of a JSON array of envelopes: {status, body}. */
export async function postBatch(text) {
  const response = await call("/v1/events/batch", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: text,
  });
  let body = null;
  try {
    body = await response.json();
  } catch { /* not JSON */ }
  return { status: response.status, body };
}

/** PUT an incident's sealed details (protocol 16.2), as the exact canonical bytes whose hash was signed. */
export async function putDetails(incident, text) {
  const response = await call(`/v1/incidents/${encodeURIComponent(incident)}/details`, {
    method: "PUT", headers: { "Content-Type": "application/json" }, body: text,
  });
  return response.status;
}

/** PUT an evidence file a signed event names (protocol 16.2: a photo, sealed for authorised readers): its status. */
export async function putEvidence(incident, sha256, blob, mediaType) {
  const response = await call(`/v1/incidents/${encodeURIComponent(incident)}/evidence/${sha256}`, {
    method: "PUT", headers: { "Content-Type": mediaType }, body: blob,
  });
  return response.status;
}

export const ledger = {
  logKey: () => getJSON("/v1/log/key"),
  orgs: () => getJSON("/v1/orgs"),
  org: (id) => getJSON(`/v1/orgs/${encodeURIComponent(id)}`),
  head: (stream) => getJSON(`/v1/streams/${encodeURIComponent(stream)}/head`),
  tag: (id) => getJSON(`/v1/tags/${encodeURIComponent(id)}`),
  custody: (org, tags = []) => getJSON(`/v1/orgs/${encodeURIComponent(org)}/custody` +
                                       (tags.length ? `?tags=${tags.map(encodeURIComponent).join(",")}` : "")),
};
