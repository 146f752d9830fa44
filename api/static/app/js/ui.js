// The screens. Plain DOM (no framework): a few hundred elements at most, large touch targets, every word from the
// catalogue (i18n.js). Screens: home (what to record, the outbox's state, "My custody"), a form per action, the
// outbox, the key, checking a tag, the language.
import { db, outboxItems, setSetting, setting } from "./db.js";
import { lang, languages, mass, parseKilograms, t, term, useLanguage, when } from "./i18n.js";
import { ledger, Offline } from "./api.js";
import { ACTIONS, actionsFor } from "./forms.js";
import { backupText, BackupError, currentKey, makeKey, restoreKey } from "./keys.js";
import { discard, NoKey, NotOnPhone, record, resign, sync } from "./outbox.js";
import { lists, refresh, verifyDocument, verifyShown } from "./custody.js";
import { interpret, prepareOffline, scan } from "./scanner.js";
import { ORG_ID, sha256Hex, TAG_ID } from "./protocol.js";
import { renderSVG } from "../vendor/uqr/index.js";

const main = () => document.getElementById("main");
const RECORD_AGAIN = new Set(["key.revoked", "key.unknown", "key.not_yet_valid", "signature.invalid", "event.duplicate_id",
                              "time.in_future", "time.before_previous", "actor.unknown"]);
const CURRENCIES = { USD: 2, CDF: 2, RWF: 0, TZS: 2, UGX: 0 };

/** h("p", {class: "x", onclick: f}, "text", child...) */
export function h(name, props = {}, ...children) {
  const element = document.createElement(name);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else if (key in element && typeof value !== "string") element[key] = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function show(...nodes) {
  main().replaceChildren(...nodes.flat().filter((node) => node !== null && node !== undefined && node !== false));
  window.scrollTo(0, 0);
}

function notice(kind, text) {
  return h("p", { class: `notice ${kind}`, role: kind === "bad" ? "alert" : "status" }, text);
}

async function profile() {
  return { org: await setting("org"), role: await setting("role"), name: await setting("orgName"), key: await currentKey() };
}

function orgName(orgs, id) {
  return orgs.find((o) => o.id === id)?.name ?? id;
}

// ---------------------------------------------------------------------------------------------------------
// The bar at the top: where we are, the network, the outbox
// ---------------------------------------------------------------------------------------------------------

export async function drawBar() {
  const counted = {};
  for (const item of await outboxItems()) counted[item.status] = (counted[item.status] ?? 0) + 1;
  const waiting = counted.waiting ?? 0;
  const trouble = (counted.refused ?? 0) + (counted.conflict ?? 0) + (counted.blocked ?? 0);
  const bar = document.getElementById("bar");
  bar.replaceChildren(
    h("a", { href: "#/", class: "brand" }, "tagledger"),
    h("span", { id: "network", class: navigator.onLine ? "chip ok" : "chip off" },
      navigator.onLine ? t("app_online") : t("app_offline")),
    h("a", { href: "#/outbox", id: "outbox-count", class: `chip ${trouble ? "bad" : waiting ? "warn" : "ok"}`,
             "data-waiting": waiting, "data-trouble": trouble },
      trouble ? t("app_outbox_trouble", { n: trouble }) : waiting ? t("app_outbox_waiting", { n: waiting }) : t("app_outbox_empty")),
  );
}

// ---------------------------------------------------------------------------------------------------------
// Home
// ---------------------------------------------------------------------------------------------------------

function verificationBadge(row) {
  if (row.waiting) return h("span", { class: "badge warn" }, t("app_badge_waiting"));
  const check = row.verification;
  if (!check) return h("span", { class: "badge" }, t("app_badge_unchecked"));
  if (!check.ok) return h("span", { class: "badge bad" }, t("app_badge_failed"));
  if (check.verdict === "flagged") return h("span", { class: "badge warn" }, t("app_badge_flagged"));
  return h("span", { class: "badge ok" }, t("app_badge_verified"));
}

function statusWords(state, orgs) {
  if (!state) return "";
  const names = (id) => orgName(orgs, id);
  const words = {
    in_custody: () => t("status_in_custody", { holder: names(state.holder) }),
    in_transit: () => t("status_in_transit", { holder: names(state.holder), recipient: names(state.pending_recipient) }),
    issued: () => t("status_issued"),
    merged: () => t("status_merged", { lot: state.lot }),
    split: () => t("status_split", { n: (state.outputs ?? []).length }),
    consumed: () => t("status_consumed", { refiner: names(state.holder) }),
    voided: () => t("status_voided", { reason: term("reason", state.void_reason) }),
  }[state.status];
  return words ? words() : state.status;
}

function custodyList(id, title, rows, orgs) {
  return h("section", { id, class: "custody" },
    h("h2", {}, `${title} (${rows.length})`),
    rows.length ? h("ul", { class: "rows" }, rows.map((row) => h("li", { "data-tag": row.tag },
      h("a", { class: "tagid", href: `/t/${encodeURIComponent(row.tag)}?lang=${lang}`, target: "_blank", rel: "noopener" }, row.tag),
      h("span", { class: "mass" }, row.state?.mass_g ? mass(row.state.mass_g) : row.item?.summary?.mass_g ? mass(row.item.summary.mass_g) : ""),
      h("div", { class: "small" }, statusWords(row.state, orgs)),
      verificationBadge(row))))
      : h("p", { class: "small" }, t("app_none")));
}

export async function home() {
  const me = await profile();
  if (!me.key || !me.org) {
    if (location.hash !== "#/key") location.hash = "#/key";
    return keyScreen();
  }
  const orgs = (await setting("orgs")) ?? [];
  const mine = orgs.find((o) => o.id === me.org);
  const role = mine?.role ?? me.role;
  const registered = mine ? (await setting("registration"))?.status : null;
  const custody = await lists();
  const actions = role ? actionsFor(role) : [];
  show(
    h("p", { class: "who" }, h("strong", {}, mine?.name ?? me.org), role ? ` · ${term("role", role)}` : ""),
    registered && registered !== "registered"
      ? h("a", { class: `notice ${registered === "revoked" ? "bad" : "warn"}`, href: "#/key" }, t(`app_key_${registered}`)) : null,
    actions.length ? h("nav", { class: "actions" }, actions.map((action) => h("a", { class: "action", id: `action-${action.id}`,
      href: `#/record/${action.id}` }, h("span", { class: "icon", "aria-hidden": "true" }, action.icon), t(`app_action_${action.id}`))))
      : notice("warn", t("app_no_role")),
    h("p", { class: "small" }, custody.at ? t("app_custody_as_of", { when: when(custody.at) }) : t("app_custody_never")),
    h("div", { class: "buttons" },
      h("button", { id: "sync", class: "primary", onclick: () => syncNow(true) }, t("app_sync_now")),
      h("a", { class: "button", href: "#/check" }, t("app_check_tag"))),
    custodyList("held", t("app_held"), custody.held, orgs),
    custodyList("incoming", t("app_incoming"), custody.incoming, orgs),
    custodyList("sent", t("app_sent"), custody.sent, orgs),
  );
}

// ---------------------------------------------------------------------------------------------------------
// Sending, and refreshing what the phone keeps
// ---------------------------------------------------------------------------------------------------------

let lastReport = null;

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

async function checkRegistration() {
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

// ---------------------------------------------------------------------------------------------------------
// Forms
// ---------------------------------------------------------------------------------------------------------

async function scanInto(input, note) {
  const video = h("video", { class: "camera", autoplay: true, muted: true, playsinline: true });
  const abort = new AbortController();
  const overlay = h("div", { class: "overlay", id: "scanner" }, h("p", {}, t("app_scan_hint")), video,
    h("button", { class: "big", onclick: () => abort.abort() }, t("app_cancel")));
  document.body.append(overlay);
  try {
    const text = await scan(video, abort.signal);
    const found = await interpret(text);
    if (found.tag) {
      input.value = found.tag;
      input.dispatchEvent(new Event("input"));
    }
    note.replaceChildren(labelNote(found));
  } catch (error) {
    if (error?.name !== "AbortError") note.replaceChildren(notice("bad", t("app_scan_failed")));
  } finally {
    overlay.remove();
  }
}

function labelNote(found) {
  const kinds = { valid: "ok", invalid: "bad", unchecked: "warn", typed: "", foreign: "bad" };
  return h("span", { class: `label-check ${kinds[found.label] ?? ""}`, "data-label": found.label },
    t(`app_label_${found.label}`), found.elsewhere ? ` ${t("app_label_elsewhere")}` : "");
}

function field(spec, context) {
  const label = t(`app_field_${spec.name}`);
  const id = `f-${spec.name}`;
  const wrap = (control, ...more) => h("div", { class: "field", "data-field": spec.name },
    h("label", { for: id }, label, spec.required ? "" : h("span", { class: "small" }, ` ${t("app_optional")}`)), control, ...more);
  switch (spec.kind) {
    case "tag": {
      const listId = `${id}-list`;
      const note = h("div", { class: "small" });
      const input = h("input", { id, name: spec.name, autocapitalize: "characters", autocomplete: "off", spellcheck: "false",
                                 list: listId, required: spec.required });
      const options = context.suggest(spec.source);
      return wrap(h("div", { class: "row" }, input,
        h("button", { type: "button", class: "scan", onclick: () => scanInto(input, note) }, t("app_scan"))),
        h("datalist", { id: listId }, options.map((value) => h("option", { value }))), note);
    }
    case "select":
      return wrap(h("select", { id, name: spec.name, required: spec.required },
        h("option", { value: "" }, t("app_choose")), spec.options.map((value) => h("option", { value }, term(spec.terms, value)))));
    case "org": {
      const choices = context.orgs.filter((o) => spec.roles.includes(o.role) && o.id !== context.org);
      return wrap(h("select", { id, name: spec.name, required: spec.required }, h("option", { value: "" }, t("app_choose")),
        choices.map((o) => h("option", { value: o.id }, `${o.name} (${term("role", o.role)})`))));
    }
    case "mass":
      return wrap(h("div", { class: "row" }, h("input", { id, name: spec.name, inputmode: "decimal", required: spec.required,
        autocomplete: "off", "data-sum-of": spec.sumOf ?? null }), h("span", { class: "unit" }, "kg")));
    case "text":
      return wrap(h("input", { id, name: spec.name, maxlength: spec.max, required: spec.required, autocomplete: "off" }));
    case "textarea":
      return wrap(h("textarea", { id, name: spec.name, maxlength: spec.max, required: spec.required, rows: 4 }));
    case "count":
      return wrap(h("input", { id, name: spec.name, type: "number", min: 0, step: 1, inputmode: "numeric" }));
    case "check":
      return h("div", { class: "field check", "data-field": spec.name, "data-only-if": spec.onlyIf.join("=") },
        h("label", {}, h("input", { type: "checkbox", name: spec.name }), ` ${label}`));
    case "datetime": {
      const now = new Date(Date.now() - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16);
      return wrap(h("input", { id, name: spec.name, type: "datetime-local", value: now, max: now, required: spec.required }));
    }
    case "month":
      return wrap(h("input", { id, name: spec.name, type: "month", value: new Date().toISOString().slice(0, 7),
                               required: spec.required }));
    case "money":
      return wrap(h("div", { class: "row" }, h("input", { id, name: spec.name, inputmode: "decimal", autocomplete: "off" }),
        h("select", { name: `${spec.name}_currency` }, Object.keys(CURRENCIES).map((c) => h("option", { value: c }, c))),
        h("span", { class: "unit" }, t("app_per_kg"))));
    case "gps": {
      const shown = h("span", { class: "gps-value", "data-gps": "" }, t("app_gps_none"));
      const button = h("button", { type: "button", id, onclick: () => locate(button, shown) }, t("app_gps_use"));
      return h("div", { class: "field", "data-field": "gps" }, h("label", { for: id }, label,
        spec.required ? "" : h("span", { class: "small" }, ` ${t("app_optional")}`)), h("div", { class: "row" }, button, shown));
    }
    case "tags":
      return h("fieldset", { class: "field", "data-field": spec.name }, h("legend", {}, label),
        context.held.length ? context.held.map((row) => h("label", { class: "pick" },
          h("input", { type: "checkbox", name: spec.name, value: row.tag, "data-mass": row.state?.mass_g ?? 0,
                       onchange: (event) => sumInto(event.target.form) }), ` ${row.tag} `, h("span", { class: "small" }, mass(row.state?.mass_g))))
          : h("p", { class: "small" }, t("app_none")));
    case "outputs": {
      const rows = h("div", { class: "outputs" });
      const add = () => rows.append(h("div", { class: "row output" },
        h("input", { name: "output_tag", autocapitalize: "characters", "aria-label": t("app_field_tag"), placeholder: t("app_field_tag") }),
        h("input", { name: "output_mass", inputmode: "decimal", "aria-label": t("app_field_mass"), placeholder: "kg" })));
      add();
      add();
      return h("fieldset", { class: "field", "data-field": spec.name }, h("legend", {}, label), rows,
        h("button", { type: "button", onclick: add }, t("app_add_row")));
    }
    case "choices":
      return h("fieldset", { class: "field", "data-field": spec.name }, h("legend", {}, label,
        h("span", { class: "small" }, ` ${t("app_optional")}`)),
        spec.options.map((value) => h("label", { class: "pick" }, h("input", { type: "checkbox", name: spec.name, value }),
          ` ${term(spec.terms, value)}`)));
    case "photos":
      return wrap(h("input", { id, name: spec.name, type: "file", accept: "image/*", capture: "environment", multiple: true }),
        h("p", { class: "small" }, t("app_photos_hint")));
    default:
      throw new Error(`unknown field kind ${spec.kind}`);
  }
}

function sumInto(form) {
  const target = form.querySelector("[data-sum-of]");
  if (!target) return;
  let grams = 0;
  for (const box of form.querySelectorAll(`input[name="${target.dataset.sumOf}"]:checked`)) grams += Number(box.dataset.mass);
  if (grams) target.value = (grams / 1000).toFixed(3).replace(".", lang === "en" || lang === "sw" ? "." : ",");
}

function locate(button, shown) {
  if (!navigator.geolocation) {
    shown.textContent = t("app_gps_unavailable");
    return;
  }
  shown.textContent = t("app_gps_waiting");
  navigator.geolocation.getCurrentPosition((position) => {
    const lat = position.coords.latitude.toFixed(7);
    const lon = position.coords.longitude.toFixed(7);
    shown.dataset.gps = JSON.stringify({ lat, lon });
    shown.textContent = `${lat}, ${lon}`;
  }, () => {
    shown.textContent = t("app_gps_unavailable");
  }, { enableHighAccuracy: true, timeout: 30000, maximumAge: 60000 });
}

class Invalid extends Error {
  constructor(field) {
    super(field);
    this.field = field;
  }
}

async function readForm(form, action) {
  const values = {};
  for (const spec of action.fields) {
    const named = form.elements.namedItem(spec.name);
    const raw = named && "value" in named ? named.value.trim() : "";
    let value = null;
    switch (spec.kind) {
      case "tag":
        value = raw.toUpperCase() || null;
        if (value && !TAG_ID.test(value)) throw new Invalid(spec.name);
        break;
      case "mass":
        value = raw ? parseKilograms(raw) : null;
        if (raw && value === null) throw new Invalid(spec.name);
        break;
      case "count":
        value = raw === "" ? null : Number(raw);
        if (value !== null && !(Number.isSafeInteger(value) && value >= 0)) throw new Invalid(spec.name);
        break;
      case "money": {
        const currency = form.elements.namedItem(`${spec.name}_currency`).value;
        const digits = CURRENCIES[currency];
        const cleaned = raw.replace(",", ".");
        if (raw && !/^\d{1,9}(\.\d+)?$/.test(cleaned)) throw new Invalid(spec.name);
        value = raw ? { currency, minor_per_kg: Math.round(Number(cleaned) * 10 ** digits) } : null;
        break;
      }
      case "gps": {
        const data = form.querySelector("[data-gps]")?.dataset.gps;
        value = data ? JSON.parse(data) : null;
        break;
      }
      case "check":
        value = Boolean(form.querySelector(`input[name="${spec.name}"]`)?.checked);
        break;
      case "datetime":
        value = raw ? new Date(raw).toISOString() : null;
        if (value && value > new Date().toISOString()) value = new Date().toISOString();
        break;
      case "tags":
      case "choices":
        value = [...form.querySelectorAll(`input[name="${spec.name}"]:checked`)].map((box) => box.value);
        if (spec.required && !value.length) throw new Invalid(spec.name);
        break;
      case "outputs": {
        value = [];
        for (const row of form.querySelectorAll(".output")) {
          const tagValue = row.querySelector('[name="output_tag"]').value.trim().toUpperCase();
          const massText = row.querySelector('[name="output_mass"]').value;
          if (!tagValue && !massText) continue;
          const grams = parseKilograms(massText);
          if (!TAG_ID.test(tagValue) || grams === null) throw new Invalid(spec.name);
          value.push({ tag: tagValue, mass: grams });
        }
        if (value.length < 2) throw new Invalid(spec.name);
        break;
      }
      case "photos": {
        value = [];
        for (const file of form.elements.namedItem(spec.name).files ?? []) {
          const bytes = new Uint8Array(await file.arrayBuffer());
          value.push({ sha256: await sha256Hex(bytes), type: file.type || "image/jpeg", name: file.name, blob: file });
        }
        break;
      }
      default:
        value = raw || null;
    }
    if (spec.required && (value === null || value === "")) throw new Invalid(spec.name);
    values[spec.name] = value;
  }
  return values;
}

export async function formScreen(actionId) {
  const action = ACTIONS.find((a) => a.id === actionId);
  const me = await profile();
  if (!me.key) return keyScreen();
  const custody = await lists();
  const context = {
    org: me.org, orgs: (await setting("orgs")) ?? [], held: custody.held.filter((r) => !r.waiting || r.item?.type !== "custody_dispatched"),
    suggest: (source) => ({ issued: custody.issued, held: custody.held.map((r) => r.tag), incoming: custody.incoming.map((r) => r.tag),
                            any: [...custody.held, ...custody.incoming, ...custody.sent].map((r) => r.tag) }[source] ?? []),
  };
  const message = h("div", { id: "form-message" });
  const form = h("form", { id: `form-${action.id}`, novalidate: true, autocomplete: "off" },
    action.fields.map((spec) => field(spec, context)),
    message,
    h("button", { class: "primary big", type: "submit", id: "sign" }, t("app_sign_and_save")));
  const toggles = () => {
    for (const wrapper of form.querySelectorAll("[data-only-if]")) {
      const [name, wanted] = wrapper.dataset.onlyIf.split("=");
      wrapper.hidden = form.elements.namedItem(name)?.value !== wanted;
    }
  };
  form.addEventListener("change", toggles);
  toggles();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("#sign");
    button.disabled = true;
    try {
      const values = await readForm(form, action);
      const spec = await action.build(values, me.org);
      const item = await record(spec);
      await drawBar();
      message.replaceChildren(notice("ok", navigator.onLine ? t("app_saved_sending") : t("app_saved_offline")));
      form.reset();
      form.dataset.saved = item.id;
      if (navigator.onLine) syncNow();
    } catch (error) {
      if (error instanceof Invalid) {
        message.replaceChildren(notice("bad", t("app_invalid", { field: t(`app_field_${error.field}`) })));
        form.querySelector(`[data-field="${error.field}"] input, [data-field="${error.field}"] select`)?.focus();
      } else if (error instanceof NotOnPhone) {
        message.replaceChildren(notice("bad", t("app_not_on_phone", { stream: error.stream.replace(/^[a-z]+:/, "") })));
      } else if (error instanceof NoKey) {
        location.hash = "#/key";
      } else {
        message.replaceChildren(notice("bad", t("app_unexpected", { error: String(error?.message ?? error) })));
      }
    } finally {
      button.disabled = false;
    }
  });
  show(h("h1", {}, t(`app_action_${action.id}`)), h("p", { class: "small" }, t(`app_action_${action.id}_hint`)), form);
}

// ---------------------------------------------------------------------------------------------------------
// The outbox
// ---------------------------------------------------------------------------------------------------------

function describe(item, orgs) {
  const s = item.summary ?? {};
  const what = term("event", item.type);
  const about = s.tag ?? s.incident ?? (s.site ? orgName(orgs, s.site) : "");
  const extra = [s.to ? t("app_to", { org: orgName(orgs, s.to) }) : null, s.mass_g ? mass(s.mass_g) : null,
                 s.inputs ? t("app_bags", { n: s.inputs.length }) : null].filter(Boolean);
  return `${what[0].toUpperCase()}${what.slice(1)} · ${about}${extra.length ? ` · ${extra.join(" · ")}` : ""}`;
}

function explanation(item) {
  const problem = item.result?.problem;
  const rule = problem?.rule;
  const lines = [];
  if (item.status === "waiting") lines.push(h("p", {}, t("app_status_waiting")));
  if (item.status === "accepted") {
    lines.push(h("p", {}, t("app_status_accepted", { seq: item.result.receipt.seq })));
    if (item.details) lines.push(h("p", { class: "small" }, item.detailsSent ? t("app_details_sent") : t("app_details_waiting")));
    if (item.evidence?.length) {
      lines.push(h("p", { class: "small" }, t("app_photos_kept", { n: item.evidence.length })),
        h("button", { class: "photos", onclick: () => item.evidence.forEach((photo) => saveFile(
          `${item.summary.incident}-${photo.sha256.slice(0, 16)}.${(photo.type.split("/")[1] ?? "jpg").replace("jpeg", "jpg")}`,
          photo.blob)) }, t("app_photos_save")));
    }
  }
  if (item.status === "blocked") lines.push(h("p", {}, t("app_status_blocked")));
  if (item.status === "replaced") lines.push(h("p", {}, t("app_status_replaced")));
  if (item.status === "discarded") lines.push(h("p", {}, t("app_status_discarded")));
  if (item.status === "refused" || item.status === "conflict") {
    const known = rule && t(`problem_${rule}`) !== `problem_${rule}`;
    lines.push(h("p", {}, `${t(item.status === "conflict" ? "app_status_conflict" : "app_status_refused")} `,
      known ? t(`problem_${rule}`) : h("span", { lang: "en" }, problem?.detail ?? String(item.result?.status))));
    if (known) lines.push(h("p", { class: "next" }, h("strong", {}, t("app_next")), " ", t(`problem_${rule}_next`)));
  }
  return lines;
}

async function act(button, work) {
  button.disabled = true;
  try {
    await work();
  } catch (error) {
    button.after(notice("bad", error instanceof Offline ? t("app_needs_network") : String(error?.message ?? error)));
  } finally {
    button.disabled = false;
    await drawBar();
    if (location.hash === "#/outbox") await outboxScreen();
  }
}

export async function outboxScreen() {
  const items = (await outboxItems()).reverse();
  const orgs = (await setting("orgs")) ?? [];
  const report = lastReport;
  show(
    h("h1", {}, t("app_outbox_title")),
    h("p", { class: "small" }, t("app_outbox_intro")),
    report?.offline ? notice("warn", t("app_offline_later")) : report?.error ? notice("bad", t("app_batch_error", { status: report.error })) : null,
    h("button", { class: "primary", id: "sync-outbox", onclick: (e) => act(e.target, () => syncNow()) }, t("app_sync_now")),
    items.length ? h("ul", { class: "outbox" }, items.map((item) => {
      const rule = item.result?.problem?.rule;
      return h("li", { class: `item ${item.status}`, "data-id": item.id, "data-status": item.status, "data-rule": rule ?? "" },
        h("p", { class: "what" }, describe(item, orgs)),
        h("p", { class: "small" }, t("app_signed_at", { when: when(item.time) })),
        ...explanation(item),
        h("div", { class: "buttons" },
          item.status === "conflict" ? h("button", { class: "resign", onclick: (e) => act(e.target, () => resign(item.id)) }, t("app_sign_again")) : null,
          item.status === "refused" && RECORD_AGAIN.has(rule) ? h("button", { class: "again",
            onclick: (e) => act(e.target, () => resign(item.id, { fresh: true })) }, t("app_record_again")) : null,
          ["refused", "conflict", "blocked"].includes(item.status) ? h("button", { class: "discard",
            onclick: (e) => act(e.target, () => discard(item.id)) }, t("app_discard")) : null));
    })) : h("p", {}, t("app_outbox_none")),
  );
}

// ---------------------------------------------------------------------------------------------------------
// The key
// ---------------------------------------------------------------------------------------------------------

function saveFile(name, blob) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function download(name, text) {
  saveFile(name, new Blob([text], { type: "application/json" }));
}

export async function keyScreen() {
  const me = await profile();
  const orgs = (await setting("orgs")) ?? [];
  const { status: registration, at: registrationAt } = (await setting("registration")) ?? {};
  const message = h("div", { id: "key-message" });
  const makeForm = h("form", { id: "make-key" },
    h("div", { class: "field" }, h("label", { for: "org" }, t("app_key_org")),
      h("input", { id: "org", name: "org", value: me.org ?? "", list: "org-list", autocomplete: "off", autocapitalize: "none",
                   required: true }),
      h("datalist", { id: "org-list" }, orgs.map((o) => h("option", { value: o.id }, o.name))),
      h("p", { class: "small" }, t("app_key_org_hint"))),
    h("details", { class: "field" }, h("summary", {}, t("app_backup_option")),
      h("p", { class: "small" }, t("app_backup_tradeoff")),
      h("label", { for: "passphrase" }, t("app_passphrase")),
      h("input", { id: "passphrase", name: "passphrase", type: "password", autocomplete: "new-password", minlength: 10 }),
      h("label", { for: "passphrase2" }, t("app_passphrase_again")),
      h("input", { id: "passphrase2", name: "passphrase2", type: "password", autocomplete: "new-password" })),
    h("button", { class: "primary big", id: "make-key-button" }, me.key ? t("app_key_replace") : t("app_key_make")));
  makeForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const org = makeForm.elements.org.value.trim().toLowerCase();
    const passphrase = makeForm.elements.passphrase.value;
    if (!ORG_ID.test(org)) return message.replaceChildren(notice("bad", t("app_invalid", { field: t("app_key_org") })));
    if (passphrase && (passphrase.length < 10 || passphrase !== makeForm.elements.passphrase2.value)) {
      return message.replaceChildren(notice("bad", t("app_passphrase_mismatch")));
    }
    if (me.key && !confirm(t("app_key_replace_confirm"))) return;
    makeForm.querySelector("button").disabled = true;
    message.replaceChildren(notice("warn", t("app_key_making")));
    const made = await makeKey(org, passphrase);
    await setSetting("org", org);
    await setSetting("registration", { status: "not_registered", at: new Date().toISOString() });
    if (made.backup) download(`tagledger-key-${org}-${made.kid}.json`, backupText(made));
    syncNow().catch(() => {});
    await keyScreen();
  });
  const restoreForm = h("form", { id: "restore-key" },
    h("input", { type: "file", name: "file", accept: "application/json,.json", required: true, "aria-label": t("app_backup_file") }),
    h("input", { type: "password", name: "passphrase", required: true, "aria-label": t("app_passphrase"), placeholder: t("app_passphrase") }),
    h("button", {}, t("app_backup_restore")));
  restoreForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const restored = await restoreKey(await restoreForm.elements.file.files[0].text(), restoreForm.elements.passphrase.value);
      await setSetting("org", restored.org);
      syncNow().catch(() => {});
      await keyScreen();
    } catch (error) {
      message.replaceChildren(notice("bad", error instanceof BackupError ? t(error.message) : String(error)));
    }
  });
  const command = me.key ? (registration === "unknown_org"
    ? `tagledger org register ${me.org} --name "…" --role … --country … --public-key ${me.key.publicKey}`
    : `tagledger org add-key ${me.org} --public-key ${me.key.publicKey}`) : "";
  const qr = h("div", { class: "qr", "aria-label": t("app_key_qr") });
  if (me.key) qr.append(new DOMParser().parseFromString(renderSVG(me.key.publicKey, { border: 2 }), "image/svg+xml").documentElement);
  show(
    h("h1", {}, t("app_key_title")),
    me.key ? h("section", { id: "key-info" },
      h("p", {}, t("app_key_intro")),
      registration ? h("p", { class: `notice ${registration === "registered" ? "ok" : registration === "revoked" ? "bad" : "warn"}`,
                              id: "registration", "data-registration": registration, "data-checked": registrationAt },
                       t(`app_key_${registration}`)) : null,
      h("dl", {}, h("dt", {}, t("app_key_org")), h("dd", { id: "key-org" }, me.org),
        h("dt", {}, t("v_kid")), h("dd", {}, h("code", { id: "kid" }, me.key.kid)),
        h("dt", {}, t("v_public_key")), h("dd", {}, h("code", { id: "public-key" }, me.key.publicKey))),
      qr,
      h("p", { class: "small" }, t("app_key_command")), h("pre", { id: "register-command" }, command),
      h("button", { id: "check-registration", onclick: (e) => act(e.target, async () => { await checkRegistration(); await keyScreen(); }) },
        t("app_key_check")),
      me.key.backup ? h("button", { onclick: () => download(`tagledger-key-${me.org}-${me.key.kid}.json`, backupText(me.key)) },
        t("app_backup_save")) : h("p", { class: "small" }, t("app_backup_none")))
      : h("p", {}, t("app_key_none")),
    message,
    h("h2", {}, me.key ? t("app_key_new_title") : t("app_key_make_title")), makeForm,
    h("h2", {}, t("app_lost_title")), h("p", {}, t("app_lost_text")), h("p", { class: "small" }, t("app_lost_revoke", { org: me.org ?? "…", kid: me.key?.kid ?? "…" })),
    h("h2", {}, t("app_backup_restore_title")), restoreForm,
  );
}

// ---------------------------------------------------------------------------------------------------------
// Checking a tag (anyone, no key needed)
// ---------------------------------------------------------------------------------------------------------

export async function checkScreen() {
  const result = h("div", { id: "check-result" });
  const input = h("input", { id: "check-tag", name: "tag", autocapitalize: "characters", autocomplete: "off" });
  const note = h("div", { class: "small" });
  const check = async () => {
    const found = await interpret(input.value);
    if (!found.tag) return result.replaceChildren(notice("bad", t("app_label_foreign")));
    const orgs = (await setting("orgs")) ?? [];
    let answer;
    try {
      answer = await ledger.tag(found.tag);
    } catch (error) {
      if (!(error instanceof Offline)) throw error;
      return result.replaceChildren(notice("warn", t("app_check_offline")));
    }
    if (answer.status === 404) return result.replaceChildren(notice("bad", t("verdict_unknown")));
    if (answer.status !== 200) return result.replaceChildren(notice("bad", t("unavailable_detail")));
    const checked = await verifyDocument(answer.body);
    result.replaceChildren(
      h("p", { class: "tagid" }, found.tag),
      notice(!checked.ok ? "bad" : checked.verdict === "flagged" ? "warn" : "ok",
        !checked.ok ? t("app_badge_failed") : checked.verdict === "flagged" ? t("verdict_flagged") : t("app_badge_verified")),
      h("p", {}, statusWords(answer.body.state, orgs)),
      h("a", { href: `/t/${encodeURIComponent(found.tag)}?lang=${lang}`, target: "_blank", rel: "noopener" }, t("app_open_page")));
  };
  input.addEventListener("input", () => { if (TAG_ID.test(input.value.trim().toUpperCase())) note.replaceChildren(); });
  show(h("h1", {}, t("app_check_tag")), h("p", { class: "small" }, t("app_check_intro")),
    h("div", { class: "field" }, h("label", { for: "check-tag" }, t("app_field_tag")),
      h("div", { class: "row" }, input, h("button", { type: "button", class: "scan", id: "check-scan",
        onclick: async () => { await scanInto(input, note); await check(); } }, t("app_scan")))), note,
    h("button", { class: "primary", id: "check-button", onclick: check }, t("check_button")), result);
}

// ---------------------------------------------------------------------------------------------------------
// Language, and the router
// ---------------------------------------------------------------------------------------------------------

export function drawLanguages() {
  const select = h("select", { id: "language", "aria-label": "Language / Langue / Lugha" },
    languages.map((l) => h("option", { value: l.code, selected: l.code === lang }, l.name)));
  select.addEventListener("change", async () => {
    await setSetting("lang", select.value);
    await useLanguage(select.value);
    drawLanguages();
    await drawBar();
    await route();
  });
  document.getElementById("lang").replaceChildren(select);
}

export async function route() {
  const [, screen, arg] = (location.hash || "#/").split("/");
  if (screen === "record" && arg) return formScreen(arg);
  if (screen === "outbox") return outboxScreen();
  if (screen === "key") return keyScreen();
  if (screen === "check") return checkScreen();
  return home();
}
