// The protocol's formats in the browser, exactly as docs/protocol.md says (sections 1, 2, 4 and 13): canonical
// JSON (the JCS subset), base64url, hashes and key ids, times, signed envelopes, signed QR labels.
// verification/ is the reference (Python); tests/data/protocol-vectors.json and the hypothesis cross-tests of
// tests/browser/test_app_protocol.py hold the two to the same bytes.
//
// Ed25519 and SHA-256 are WebCrypto's (crypto.subtle): no library, and the private key never leaves it.

export const MAX_SAFE_INTEGER = Number.MAX_SAFE_INTEGER; // 2^53 - 1 (section 1)
export const BODY_VERSION = 1;

export class ProtocolError extends Error {
  constructor(message, pointer = "") {
    super(pointer ? `${pointer}: ${message}` : message);
    this.pointer = pointer;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Section 1: canonical JSON (RFC 8785 JCS on a subset: integers within +-(2^53-1), well-formed strings)
// ---------------------------------------------------------------------------------------------------------

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function encodeString(text, pointer) {
  if (LONE_SURROGATE.test(text)) throw new ProtocolError("a string with a lone surrogate is not valid Unicode", pointer);
  // On well-formed strings JSON.stringify escapes exactly as JCS 3.2.2.2 does: \" \\ \b \f \n \r \t, the other
  // control characters as \u00xx (lowercase hex), everything else literal.
  return JSON.stringify(text);
}

function encode(value, pointer, out) {
  if (value === null) { out.push("null"); return; }
  switch (typeof value) {
    case "boolean":
      out.push(value ? "true" : "false");
      return;
    case "number":
      if (!Number.isSafeInteger(value)) {
        throw new ProtocolError(`${value} is not an integer in [-(2^53-1), 2^53-1]`, pointer);
      }
      out.push(Object.is(value, -0) ? "0" : String(value));
      return;
    case "string":
      out.push(encodeString(value, pointer));
      return;
    case "object": {
      if (Array.isArray(value)) {
        out.push("[");
        for (let i = 0; i < value.length; i++) {
          if (i) out.push(",");
          if (!(i in value)) throw new ProtocolError("an array with a hole", `${pointer}/${i}`);
          encode(value[i], `${pointer}/${i}`, out);
        }
        out.push("]");
        return;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new ProtocolError(`${Object.prototype.toString.call(value)} is not a JSON value`, pointer);
      }
      // Array.prototype.sort compares UTF-16 code units: the order JCS 3.2.3 prescribes.
      const names = Object.keys(value).sort();
      out.push("{");
      names.forEach((name, i) => {
        const at = `${pointer}/${name.replaceAll("~", "~0").replaceAll("/", "~1")}`;
        if (i) out.push(",");
        out.push(encodeString(name, at), ":");
        if (value[name] === undefined) throw new ProtocolError("undefined is not a JSON value", at);
        encode(value[name], at, out);
      });
      out.push("}");
      return;
    }
    default:
      throw new ProtocolError(`a ${typeof value} is not a JSON value`, pointer);
  }
}

/** jcs(value) as text; throws ProtocolError for anything outside the protocol's subset. */
export function canonical(value) {
  const out = [];
  encode(value, "", out);
  return out.join("");
}

/** jcs(value): the UTF-8 bytes that are hashed and signed. */
export function canonicalBytes(value) {
  return new TextEncoder().encode(canonical(value));
}

// ---------------------------------------------------------------------------------------------------------
// Section 2: encodings
// ---------------------------------------------------------------------------------------------------------

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64URL_TEXT = /^[A-Za-z0-9_-]*$/;

export function b64urlEncode(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let j = 0; j < chars; j++) out += B64URL[(n >> (18 - 6 * j)) & 63];
  }
  return out;
}

/** Strict base64url without padding: only its canonical text (unused low bits zero) is accepted. */
export function b64urlDecode(text, size = undefined) {
  if (typeof text !== "string" || !B64URL_TEXT.test(text) || text.length % 4 === 1) {
    throw new ProtocolError("not unpadded base64url");
  }
  const bytes = new Uint8Array(Math.floor((text.length * 6) / 8));
  let bits = 0, acc = 0, k = 0;
  for (const ch of text) {
    acc = (acc << 6) | B64URL.indexOf(ch);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[k++] = (acc >> bits) & 255;
    }
    acc &= (1 << bits) - 1;
  }
  if (acc !== 0) throw new ProtocolError("non-canonical base64url: unused bits are not zero");
  if (size !== undefined && bytes.length !== size) throw new ProtocolError(`decodes to ${bytes.length} bytes, expected ${size}`);
  return bytes;
}

export function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(bytes) {
  return hex(await crypto.subtle.digest("SHA-256", bytes));
}

/** The kid of a raw 32-byte public key: the first 16 hex characters of its SHA-256. */
export async function keyId(rawPublicKey) {
  if (rawPublicKey.length !== 32) throw new ProtocolError("a raw Ed25519 public key is 32 bytes");
  return (await sha256Hex(rawPublicKey)).slice(0, 16);
}

export const TAG_ID = /^[A-Z0-9][A-Z0-9-]{2,39}$/;
export const ORG_ID = /^[a-z0-9][a-z0-9-]{1,39}$/;
export const KID = /^[0-9a-f]{16}$/;
export const HASH = /^[0-9a-f]{64}$/;
const TIME = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d{1,6})?Z$/;

/** A protocol time for a JS Date: `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC; milliseconds are a valid fraction). */
export function formatTime(date) {
  const year = date.getUTCFullYear();
  if (!(year >= 1 && year <= 9999)) throw new ProtocolError("a time's year is 0001..9999");
  return date.toISOString();
}

/** Whether `text` is a protocol time naming an instant (impossible dates are not). */
export function isTime(text) {
  const m = typeof text === "string" && TIME.exec(text);
  if (!m) return false;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  if (y < 1 || mo < 1 || mo > 12 || h > 23 || mi > 59 || s > 59) return false;
  const days = new Date(Date.UTC(2000, mo, 0)).getUTCDate(); // days in that month of a leap year
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  return d >= 1 && d <= (mo === 2 && !leap ? 28 : days);
}

// ---------------------------------------------------------------------------------------------------------
// Section 4: envelopes
// ---------------------------------------------------------------------------------------------------------

/** An event body (section 4): `links` only when given; `data` members that are null or undefined are left out. */
export function makeBody({ id = crypto.randomUUID(), type, stream, prev, links, actor, key, time, data }) {
  const body = { v: BODY_VERSION, id, type, stream, prev: prev ?? null, actor, key, time, data: {} };
  for (const [name, value] of Object.entries(data ?? {})) {
    if (value !== null && value !== undefined) body.data[name] = value;
  }
  if (links && Object.keys(links).length) body.links = links;
  return body;
}

/** Sign a body with an Ed25519 CryptoKey: the envelope `{body, sig}` (sig over jcs(body)). */
export async function signBody(privateKey, body) {
  const signature = await crypto.subtle.sign({ name: "Ed25519" }, privateKey, canonicalBytes(body));
  return { body, sig: b64urlEncode(new Uint8Array(signature)) };
}

/** The envelope hash: sha256_hex(jcs(envelope)), over the whole envelope including `sig`. */
export async function envelopeHash(envelope) {
  return sha256Hex(canonicalBytes(envelope));
}

export async function importPublicKey(rawPublicKey) {
  return crypto.subtle.importKey("raw", rawPublicKey, { name: "Ed25519" }, false, ["verify"]);
}

/** Whether `envelope.sig` is a valid signature of jcs(envelope.body) by the raw public key. */
export async function verifyEnvelope(envelope, rawPublicKey) {
  let signature;
  try {
    signature = b64urlDecode(envelope.sig, 64);
  } catch {
    return false;
  }
  const key = await importPublicKey(rawPublicKey);
  return crypto.subtle.verify({ name: "Ed25519" }, key, signature, canonicalBytes(envelope.body));
}

/** The streams an event joins with the hash it names for each (`prev` for `stream`, `links` for the others). */
export function prevHashes(body) {
  return { [body.stream]: body.prev ?? null, ...(body.links ?? {}) };
}

// ---------------------------------------------------------------------------------------------------------
// Section 13: signed QR labels
// ---------------------------------------------------------------------------------------------------------

const LABEL_URL_CHARS = /^[A-Za-z0-9._~:/?#[\]@!$&'()*+,;=%-]+$/;
const LABEL_QUERY = /^s=([0-9a-f]{16})\.([A-Za-z0-9_-]{86})$/;
const URL_START = /^(https?):\/\/([^/?#]*)([^?#]*)\?(.*)$/;

export class LabelError extends Error {
  constructor(reason, message) {
    super(message);
    this.reason = reason; // malformed, unknown_key, bad_signature
  }
}

/** Parse a label URL strictly (13.2): {baseUrl, tag, kid, sig}; LabelError("malformed") otherwise. */
export function parseLabelUrl(url) {
  const bad = (why) => new LabelError("malformed", why);
  if (typeof url !== "string" || !url || url.length > 2048 || !LABEL_URL_CHARS.test(url)) throw bad("not URL characters");
  if (url.includes("#")) throw bad("a label URL has no fragment");
  if (url.split("?").length !== 2) throw bad("one query");
  const m = URL_START.exec(url);
  if (!m) throw bad("not an http(s) URL with a query");
  const [, scheme, authority, path, query] = m;
  if (!authority || authority.includes("@") || authority.startsWith(":")) throw bad("a label URL names a host");
  const port = /^(?:\[[^\]]*\]|[^:[\]]+)(?::(\d*))?$/.exec(authority);
  if (!port || (port[1] && Number(port[1]) > 65535)) throw bad("a label URL has a valid host and port");
  const cut = path.lastIndexOf("/t/");
  const tag = cut >= 0 ? path.slice(cut + 3) : "";
  if (cut < 0 || !TAG_ID.test(tag)) throw bad("the path ends with /t/<tag id>");
  const head = path.slice(0, cut);
  if (head.endsWith("/")) throw bad("no empty segment before /t/");
  const q = LABEL_QUERY.exec(query);
  if (!q) throw bad("the query is exactly s=<kid>.<sig>");
  try {
    b64urlDecode(q[2], 64);
  } catch {
    throw bad("the signature is not canonical base64url");
  }
  return { baseUrl: `${scheme}://${authority}${head}`, tag, kid: q[1], sig: q[2] };
}

export function labelMessage(origin, tag) {
  if (typeof origin !== "string" || !origin || origin.includes("\n")) throw new LabelError("malformed", "bad origin");
  if (!TAG_ID.test(tag)) throw new LabelError("malformed", "not a tag id");
  return new TextEncoder().encode(`tagledger-label/v1\n${origin}\n${tag}`);
}

/** Check a parsed label with the operator's keys ({kid: raw public key}); throws LabelError, else returns. */
export async function verifyLabel(label, origin, operatorKeys) {
  const raw = operatorKeys[label.kid];
  if (!raw) throw new LabelError("unknown_key", "not a key of the ledger's operator");
  const key = await importPublicKey(raw);
  const ok = await crypto.subtle.verify({ name: "Ed25519" }, key, b64urlDecode(label.sig, 64), labelMessage(origin, label.tag));
  if (!ok) throw new LabelError("bad_signature", "the label's signature does not verify");
}
