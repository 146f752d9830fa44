// Scanning a tag's QR label with the phone's camera. The browser's own BarcodeDetector where it has one (Chrome on
// Android); elsewhere (and in headless Chromium) the vendored ZXing-C++ WebAssembly decoder, loaded on first use and
// then kept offline by the service worker. A scanned label is checked on the phone (docs/protocol.md 13.3): the
// operator's signature over the tag id, with the operator's keys and the ledger's origin kept from the last sync.
import { setting } from "./db.js";
import { b64urlDecode, LabelError, parseLabelUrl, TAG_ID, verifyLabel } from "./protocol.js";

const EVERY_MS = 200;
let decoderPromise = null;

async function barcodeDetector() {
  if (!("BarcodeDetector" in globalThis)) return null;
  try {
    const formats = await globalThis.BarcodeDetector.getSupportedFormats();
    if (!formats.includes("qr_code")) return null;
    const detector = new globalThis.BarcodeDetector({ formats: ["qr_code"] });
    return { name: "BarcodeDetector", frame: "video",
             read: async (source) => (await detector.detect(source)).map((found) => found.rawValue) };
  } catch {
    return null;
  }
}

async function wasmDecoder() {
  const zxing = await import("../vendor/zxing-wasm/es/reader/index.js");
  const wasm = new URL("../vendor/zxing-wasm/reader/zxing_reader.wasm", import.meta.url).href;
  await zxing.prepareZXingModule({ overrides: { locateFile: () => wasm }, fireImmediately: true });
  return {
    name: "zxing-wasm", frame: "pixels",
    read: async (pixels) => (await zxing.readBarcodes(pixels, { formats: ["QRCode"], tryHarder: true, maxNumberOfSymbols: 1 }))
      .filter((found) => found.isValid).map((found) => found.text),
  };
}

/** The decoder this browser uses: {name, frame, read}. */
export function decoder() {
  decoderPromise ??= barcodeDetector().then((native) => native ?? wasmDecoder());
  return decoderPromise;
}

/** Fetch the WebAssembly decoder ahead of need (online, on a phone without BarcodeDetector) so it works offline. */
export async function prepareOffline() {
  if (await barcodeDetector()) return;
  await decoder();
}

/**
 * Show the camera in `video` and resolve with the first QR code's text; `signal` aborts (the camera is released
 * either way).
 */
export async function scan(video, signal) {
  const reader = await decoder();
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  try {
    video.srcObject = stream;
    video.setAttribute("playsinline", "");
    video.muted = true;
    await video.play();
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    while (!signal?.aborted) {
      if (video.videoWidth) {
        let source = video;
        if (reader.frame === "pixels") {
          canvas.width = video.videoWidth;
          canvas.height = video.videoHeight;
          context.drawImage(video, 0, 0);
          source = context.getImageData(0, 0, canvas.width, canvas.height);
        }
        const [text] = await reader.read(source);
        if (text) return text;
      }
      await new Promise((resolve) => setTimeout(resolve, EVERY_MS));
    }
    throw new DOMException("scan cancelled", "AbortError");
  } finally {
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
  }
}

/**
 * What a scanned text says: {tag, label} where label is `valid` (the operator signed this tag id for this ledger),
 * `invalid` (not signed by the operator: a fabricated or altered label), `unchecked` (no operator keys on the
 * phone yet), `typed` (a bare tag number) or `foreign` (a code that is not a tag label); `elsewhere` when a valid
 * label points at another site than this ledger's (a copied label, 13.3 step 2).
 */
export async function interpret(text) {
  const trimmed = String(text ?? "").trim();
  if (TAG_ID.test(trimmed.toUpperCase()) && !trimmed.includes("/")) return { tag: trimmed.toUpperCase(), label: "typed" };
  let parsed;
  try {
    parsed = parseLabelUrl(trimmed);
  } catch (error) {
    if (error instanceof LabelError) return { tag: null, label: "foreign" };
    throw error;
  }
  const labels = await setting("labels");
  if (!labels?.origin || !labels.keys) return { tag: parsed.tag, label: "unchecked" };
  const keys = Object.fromEntries(Object.entries(labels.keys).map(([kid, key]) => [kid, b64urlDecode(key, 32)]));
  try {
    await verifyLabel(parsed, labels.origin, keys);
  } catch (error) {
    if (error instanceof LabelError) return { tag: parsed.tag, label: "invalid" };
    throw error;
  }
  return { tag: parsed.tag, label: "valid", elsewhere: parsed.baseUrl !== location.origin };
}
