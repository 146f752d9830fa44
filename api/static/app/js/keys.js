// The organisation's signing key, made and kept on this phone (WebCrypto Ed25519). The private key is a
// non-extractable CryptoKey stored in IndexedDB: no script, not even this app's, can read its bytes, and the
// ledger never sees it. What leaves the phone is the public key and its kid, for the operator to register.
//
// Optional backup. A non-extractable key cannot be exported, so a key that can be backed up is made extractable
// for a moment: its PKCS#8 bytes are encrypted with AES-GCM under a key derived from a passphrase (PBKDF2-SHA-256,
// 600,000 iterations), then imported again as non-extractable, and the plain bytes are wiped. The trade-off: the
// backup file is only as strong as its passphrase, and for that moment the key existed in the page's memory;
// without a backup, a lost phone means revoking its key and registering a new one (no secret ever leaves it).
import { db } from "./db.js";
import { b64urlDecode, b64urlEncode, keyId } from "./protocol.js";

const ED25519 = { name: "Ed25519" };
export const BACKUP_FORMAT = "tagledger/key-backup/v1";
export const PBKDF2_ITERATIONS = 600000;

export class BackupError extends Error {}

export async function currentKey() {
  return (await db()).get("keys", "current");
}

async function describe(publicKey) {
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", publicKey));
  return { publicKey: b64urlEncode(raw), kid: await keyId(raw) };
}

async function wrappingKey(passphrase, salt, iterations) {
  const material = await crypto.subtle.importKey("raw", new TextEncoder().encode(passphrase), "PBKDF2", false,
    ["deriveKey"]);
  return crypto.subtle.deriveKey({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, material,
    { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

function associated(kid) {
  return new TextEncoder().encode(`${BACKUP_FORMAT}\n${kid}`);
}

async function keep(record) {
  const store = (await db()).transaction("keys", "readwrite").store;
  const previous = await store.get("current");
  if (previous) await store.put({ ...previous, replacedAt: new Date().toISOString() }, `old:${previous.kid}`);
  await store.put(record, "current");
  await store.transaction.done;
  return record;
}

/** Make this phone's key for `org`. With a passphrase, also an encrypted backup (kept with the key so that it can
 * be saved again later; it is useless without the passphrase). */
export async function makeKey(org, passphrase = "") {
  const created = new Date().toISOString();
  if (!passphrase) {
    const pair = await crypto.subtle.generateKey(ED25519, false, ["sign", "verify"]);
    return keep({ org, created, ...(await describe(pair.publicKey)), privateKey: pair.privateKey, backup: null });
  }
  const pair = await crypto.subtle.generateKey(ED25519, true, ["sign", "verify"]);
  const info = await describe(pair.publicKey);
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  try {
    const salt = crypto.getRandomValues(new Uint8Array(16));
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const wrapping = await wrappingKey(passphrase, salt, PBKDF2_ITERATIONS);
    const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: associated(info.kid) },
      wrapping, pkcs8));
    const backup = {
      format: BACKUP_FORMAT, org, kid: info.kid, public_key: info.publicKey, created,
      kdf: { name: "PBKDF2", hash: "SHA-256", iterations: PBKDF2_ITERATIONS, salt: b64urlEncode(salt) },
      cipher: { name: "AES-GCM", iv: b64urlEncode(iv) }, ciphertext: b64urlEncode(sealed),
    };
    const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, ED25519, false, ["sign"]);
    return keep({ org, created, ...info, privateKey, backup });
  } finally {
    pkcs8.fill(0);
  }
}

/** Restore a key from a backup file's text and its passphrase; it becomes this phone's key (non-extractable). */
export async function restoreKey(text, passphrase) {
  let backup;
  try {
    backup = JSON.parse(text);
  } catch {
    throw new BackupError("app_backup_not_a_backup");
  }
  if (backup?.format !== BACKUP_FORMAT || backup.kdf?.name !== "PBKDF2" || backup.cipher?.name !== "AES-GCM") {
    throw new BackupError("app_backup_not_a_backup");
  }
  let pkcs8;
  try {
    const wrapping = await wrappingKey(passphrase, b64urlDecode(backup.kdf.salt), backup.kdf.iterations);
    pkcs8 = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: b64urlDecode(backup.cipher.iv),
      additionalData: associated(backup.kid) }, wrapping, b64urlDecode(backup.ciphertext)));
  } catch {
    throw new BackupError("app_backup_wrong_passphrase");
  }
  try {
    const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, ED25519, false, ["sign"]);
    // the key in the file must be the one it names: sign, and check with the public key it gives
    const probe = new TextEncoder().encode("tagledger key backup check");
    const signature = await crypto.subtle.sign(ED25519, privateKey, probe);
    const publicKey = await crypto.subtle.importKey("raw", b64urlDecode(backup.public_key, 32), ED25519, false, ["verify"]);
    const kid = await keyId(b64urlDecode(backup.public_key, 32));
    if (kid !== backup.kid || !(await crypto.subtle.verify(ED25519, publicKey, signature, probe))) {
      throw new BackupError("app_backup_not_a_backup");
    }
    return keep({ org: backup.org, created: backup.created, kid, publicKey: backup.public_key, privateKey, backup,
                  restoredAt: new Date().toISOString() });
  } finally {
    pkcs8.fill(0);
  }
}

export function backupText(record) {
  return JSON.stringify(record.backup, null, 1);
}
