// A form per action (js/forms.js says which fields and which event): scan or type the tag, fill in, sign and keep.
import { setting } from "../db.js";
import { lang, mass, parseKilograms, t, term } from "../i18n.js";
import { ACTIONS } from "../forms.js";
import { NoKey, NotOnPhone, record } from "../outbox.js";
import { lists } from "../custody.js";
import { interpret, scan } from "../scanner.js";
import { sha256Hex, TAG_ID } from "../protocol.js";
import { h, notice, show } from "../dom.js";
import { drawBar } from "../frame.js";
import { profile, syncNow } from "../session.js";
import { keyScreen } from "./key.js";

const CURRENCIES = { USD: 2, CDF: 2, RWF: 0, TZS: 2, UGX: 0 };

export async function scanInto(input, note) {
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
