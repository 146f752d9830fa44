// What each role records, as forms: the fields a person fills in, and how they become an event of
// docs/protocol.md section 6 (its type, stream, links and data). screens/record.js draws the forms; outbox.js signs
// and keeps.
import { canonical, b64urlEncode, sha256Hex } from "./protocol.js";

export const CUSTODY_ROLES = ["site", "cooperative", "trader", "processor", "exporter", "refiner"];
const HANDLERS = ["cooperative", "trader", "processor", "exporter", "refiner"];
export const ALL_ROLES = [...CUSTODY_ROLES, "operator", "auditor", "monitor", "authority", "partner"];
export const MINERALS = ["tin", "tantalum", "tungsten", "cobalt", "copper"];
export const VOID_REASONS = ["lost", "stolen", "damaged", "other"];
export const PURPOSES = ["customs", "inspection", "purchase", "monitoring", "other"];
export const CATEGORIES = ["child_labour", "health_safety", "forced_labour", "armed_groups", "security_forces",
                           "chain_of_custody", "environment", "governance"];
export const SEVERITIES = ["low", "medium", "high", "critical"];
export const CONCERNS = ["price", "payment_delay", "safety", "health", "water", "harassment", "illegal_taxation",
                         "land_access", "equipment", "finance", "childcare", "other"];

const tag = (name, source, required = true) => ({ name, kind: "tag", source, required });
const gps = (required = false) => ({ name: "gps", kind: "gps", required });
const text = (name, required = false, max = 120, long = false) => ({ name, kind: long ? "textarea" : "text", required, max });

function streamOf(value) {
  return `tag:${value}`;
}

function place(values) {
  return { location: values.location || null, gps: values.gps || null };
}

/** Sealed details (protocol 16.2): the object, its canonical text (what is uploaded) and its commitment. */
export async function sealDetails({ description, gps: position, notes }) {
  const details = { v: 1, salt: b64urlEncode(crypto.getRandomValues(new Uint8Array(16))), description };
  if (position) details.gps = position;
  if (notes) details.notes = notes;
  const textForm = canonical(details);
  return { details, text: textForm, sha256: await sha256Hex(new TextEncoder().encode(textForm)) };
}

export function newIncidentId(now = new Date()) {
  const day = now.toISOString().slice(0, 10).replaceAll("-", "");
  const random = Array.from(crypto.getRandomValues(new Uint8Array(3)), (b) => b.toString(16).padStart(2, "0")).join("");
  return `INC-${day}-${random.toUpperCase()}`;
}

export const ACTIONS = [
  {
    id: "attach", roles: ["site"], icon: "+",
    fields: [tag("tag", "issued"), { name: "mineral", kind: "select", options: MINERALS, terms: "mineral", required: true },
             { name: "mass", kind: "mass", required: true }, text("pit", true), text("ore"), gps()],
    build: (v, org) => ({ type: "tag_attached", stream: streamOf(v.tag), summary: { tag: v.tag, mass_g: v.mass },
                          data: { site: org, mineral: v.mineral, ore: v.ore || null, mass_g: v.mass, pit: v.pit, gps: v.gps || null } }),
  },
  {
    id: "receive", roles: HANDLERS, icon: "↓",
    fields: [tag("tag", "incoming"), { name: "mass", kind: "mass", required: true }, text("location"), gps()],
    build: (v) => ({ type: "custody_received", stream: streamOf(v.tag), summary: { tag: v.tag, mass_g: v.mass },
                     data: { mass_g: v.mass, ...place(v) } }),
  },
  {
    id: "dispatch", roles: CUSTODY_ROLES, icon: "→",
    fields: [tag("tag", "held"), { name: "to", kind: "org", roles: CUSTODY_ROLES, required: true },
             { name: "mass", kind: "mass" }, text("location"), gps()],
    build: (v) => ({ type: "custody_dispatched", stream: streamOf(v.tag), summary: { tag: v.tag, to: v.to, mass_g: v.mass },
                     data: { to: v.to, mass_g: v.mass ?? null, ...place(v) } }),
  },
  {
    id: "merge", roles: HANDLERS, icon: "⊕",
    fields: [tag("tag", "issued"), { name: "inputs", kind: "tags", source: "held", required: true },
             { name: "mass", kind: "mass", required: true, sumOf: "inputs" }],
    build: (v) => ({ type: "lot_formed", stream: streamOf(v.tag), links: v.inputs.map(streamOf),
                     summary: { tag: v.tag, inputs: v.inputs, mass_g: v.mass }, data: { inputs: v.inputs, mass_g: v.mass } }),
  },
  {
    id: "split", roles: HANDLERS, icon: "⊗",
    fields: [tag("tag", "held"), { name: "outputs", kind: "outputs", source: "issued", required: true }],
    build: (v) => ({ type: "lot_split", stream: streamOf(v.tag), links: v.outputs.map((o) => streamOf(o.tag)),
                     summary: { tag: v.tag, outputs: v.outputs.map((o) => o.tag),
                                masses: Object.fromEntries(v.outputs.map((o) => [o.tag, o.mass])) },
                     data: { outputs: v.outputs.map((o) => ({ tag: o.tag, mass_g: o.mass })) } }),
  },
  {
    id: "consume", roles: ["refiner"], icon: "■",
    fields: [tag("tag", "held"), { name: "mass", kind: "mass" }, text("product")],
    build: (v) => ({ type: "tag_consumed", stream: streamOf(v.tag), summary: { tag: v.tag, mass_g: v.mass },
                     data: { mass_g: v.mass ?? null, product: v.product || null } }),
  },
  {
    id: "void", roles: [...CUSTODY_ROLES, "operator"], icon: "✕",
    fields: [tag("tag", "held"), { name: "reason", kind: "select", options: VOID_REASONS, terms: "reason", required: true },
             text("note", false, 500, true)],
    build: (v) => ({ type: "tag_voided", stream: streamOf(v.tag), summary: { tag: v.tag },
                     data: { reason: v.reason, note: v.note || null } }),
  },
  {
    id: "scan", roles: ALL_ROLES, icon: "◎",
    fields: [tag("tag", "any"), { name: "purpose", kind: "select", options: PURPOSES, terms: "purpose" }, text("location"),
             gps(true)],
    build: (v) => ({ type: "tag_scanned", stream: streamOf(v.tag), summary: { tag: v.tag },
                     data: { gps: v.gps, location: v.location || null, purpose: v.purpose || null } }),
  },
  {
    id: "incident", roles: ["monitor"], icon: "!",
    fields: [{ name: "site", kind: "org", roles: ["site"], required: true },
             { name: "category", kind: "select", options: CATEGORIES, terms: "risk_cat", required: true },
             { name: "worst_forms", kind: "check", onlyIf: ["category", "child_labour"] },
             { name: "severity", kind: "select", options: SEVERITIES, terms: "risk_sev", required: true },
             { name: "occurred", kind: "datetime", required: true },
             text("summary", false, 200), { name: "people", kind: "count" },
             text("description", true, 4000, true), gps(), { name: "photos", kind: "photos" }],
    async build(v) {
      const sealed = await sealDetails({ description: v.description, gps: v.gps });
      const id = newIncidentId();
      const evidence = v.photos.map((p) => ({ sha256: p.sha256, media_type: p.type }));
      return {
        type: "incident_reported", stream: `incident:${id}`, creates: true, details: sealed.text,
        evidence: v.photos,
        summary: { incident: id, site: v.site, category: v.category },
        data: { site: v.site, category: v.category, severity: v.severity, occurred_at: v.occurred,
                details: { sha256: sealed.sha256 },
                worst_forms: v.category === "child_labour" ? Boolean(v.worst_forms) : null,
                summary: v.summary || null, people_affected: v.people ?? null, evidence: evidence.length ? evidence : null },
      };
    },
  },
  {
    id: "visit", roles: ["monitor"], icon: "✓",
    fields: [{ name: "site", kind: "org", roles: ["site"], required: true }, { name: "period", kind: "month", required: true },
             { name: "price_paid", kind: "money" }, { name: "reference_price", kind: "money" }, text("reference_source"),
             { name: "women", kind: "count" }, { name: "men", kind: "count" }, { name: "minors", kind: "count" },
             { name: "concerns", kind: "choices", options: CONCERNS, terms: "concern" }, text("note", false, 500, true)],
    build: (v) => ({
      type: "site_monitored", stream: `site:${v.site}`, empty: true, summary: { site: v.site, period: v.period },
      data: { period: v.period, price_paid: v.price_paid ?? null, reference_price: v.reference_price ?? null,
              reference_source: v.reference_source || null,
              workforce: v.women !== null || v.men !== null ? { women: v.women ?? 0, men: v.men ?? 0 } : null,
              minors_observed: v.minors ?? null, concerns: v.concerns.length ? v.concerns : null, note: v.note || null },
    }),
  },
];

export function actionsFor(role) {
  return ACTIONS.filter((action) => action.roles.includes(role));
}
