// The outbox: every record signed on this phone, what the ledger said of it in plain words, and what can be done.
import { outboxItems, setting } from "../db.js";
import { mass, t, term, when } from "../i18n.js";
import { Offline } from "../api.js";
import { discard, resign } from "../outbox.js";
import { h, notice, saveFile, show } from "../dom.js";
import { drawBar } from "../frame.js";
import { lastSync, orgName, syncNow } from "../session.js";

/** Refusals that "Record again" (a new event, now, with this phone's current key) can mend. */
const RECORD_AGAIN = new Set(["key.revoked", "key.unknown", "key.not_yet_valid", "signature.invalid", "event.duplicate_id",
                              "time.in_future", "time.before_previous", "actor.unknown"]);

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
      const sent = item.evidence.every((photo) => (item.photosSent ?? []).includes(photo.sha256));
      lines.push(h("p", { class: "small" }, t("app_photos_kept", { n: item.evidence.length }), " ",
        sent ? t("app_photos_sent") : t("app_photos_waiting")),
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

export async function act(button, work) {
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
  const report = lastSync();
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
