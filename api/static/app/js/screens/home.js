// Home: who this phone records for, what its role records, and "My custody" (held, on their way, sent), each tag
// with its verification status.
import { setting } from "../db.js";
import { lang, mass, t, term, when } from "../i18n.js";
import { actionsFor } from "../forms.js";
import { lists } from "../custody.js";
import { h, notice, show } from "../dom.js";
import { orgName, profile, syncNow } from "../session.js";
import { keyScreen } from "./key.js";

function verificationBadge(row) {
  if (row.waiting) return h("span", { class: "badge warn" }, t("app_badge_waiting"));
  const check = row.verification;
  if (!check) return h("span", { class: "badge" }, t("app_badge_unchecked"));
  if (!check.ok) return h("span", { class: "badge bad" }, t("app_badge_failed"));
  if (check.verdict === "flagged") return h("span", { class: "badge warn" }, t("app_badge_flagged"));
  return h("span", { class: "badge ok" }, t("app_badge_verified"));
}

export function statusWords(state, orgs) {
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
