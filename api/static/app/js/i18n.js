// Words on the screen, from the same message catalogue as the verification page (api/catalogue/<lang>.json,
// served at /app/i18n/ and kept offline by the service worker). Adding a language is adding one catalogue file.
let messages = {};
let english = {};
let meta = { name: "English", plural_one: [1], decimal: ".", group: "," };
export let lang = "en";
export let languages = [{ code: "en", name: "English" }];

async function load(code) {
  const response = await fetch(`/app/i18n/${code}.json`);
  if (!response.ok) throw new Error(`no catalogue for ${code}`);
  return response.json();
}

/** The language to start in: the one chosen before, else the phone's first language we have, else English. */
export function pick(chosen, preferred = navigator.languages ?? [navigator.language]) {
  const have = new Set(languages.map((l) => l.code));
  if (chosen && have.has(chosen)) return chosen;
  for (const tag of preferred) {
    const primary = String(tag).toLowerCase().split("-")[0];
    if (have.has(primary)) return primary;
  }
  return "en";
}

export async function useLanguage(chosen) {
  try {
    languages = await (await fetch("/app/i18n/languages.json")).json();
  } catch { /* keep the list we have */ }
  const code = pick(chosen);
  const catalogue = await load(code);
  english = code === "en" ? catalogue : await load("en");
  meta = catalogue["@meta"];
  messages = catalogue;
  lang = code;
  document.documentElement.lang = code;
  return code;
}

/** The message `key` with its {placeholders} filled; with a count `n`, its `_one`/`_other` form. */
export function t(key, values = {}) {
  if ("n" in values && `${key}_other` in english) {
    key += meta.plural_one.includes(values.n) ? "_one" : "_other";
  }
  const text = messages[key] ?? english[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

/** A coded value in words (`prefix_value`, e.g. mineral_tin), or the value itself when the catalogue has none. */
export function term(prefix, value) {
  if (value === null || value === undefined || value === "") return "";
  return messages[`${prefix}_${value}`] ?? english[`${prefix}_${value}`] ?? String(value);
}

export function has(key) {
  return key in messages || key in english;
}

/** Exact kilograms from integer grams, in the language's format: 49800 -> "49.800 kg" / "49,800 kg". */
export function mass(grams) {
  if (grams === null || grams === undefined) return "";
  const sign = grams < 0 ? "-" : "";
  const g = Math.abs(grams);
  const whole = String(Math.floor(g / 1000)).replace(/\B(?=(\d{3})+(?!\d))/g, meta.group);
  return `${sign}${whole}${meta.decimal}${String(g % 1000).padStart(3, "0")}\u00a0kg`;
}

/** Grams from what a person typed in kilograms ("49.8", "49,8", "49 800"); null if it is not a mass. */
export function parseKilograms(text) {
  const cleaned = String(text ?? "").trim().replace(/[\s\u00a0\u202f]/g, "").replace(",", ".");
  if (!/^\d{1,7}(\.\d{0,3})?$/.test(cleaned)) return null;
  const [whole, fraction = ""] = cleaned.split(".");
  const grams = Number(whole) * 1000 + Number(fraction.padEnd(3, "0"));
  return grams > 0 ? grams : null;
}

/** `2026-11-23 14:05 UTC` from a protocol time. */
export function when(moment) {
  if (!moment) return "";
  return t("datetime_utc", { date: moment.slice(0, 10), time: moment.slice(11, 16) });
}
