// Checking a tag (anyone, no key needed): its label's signature on the phone, then its history from the ledger.
import { setting } from "../db.js";
import { lang, t } from "../i18n.js";
import { ledger, Offline } from "../api.js";
import { verifyDocument } from "../custody.js";
import { interpret } from "../scanner.js";
import { TAG_ID } from "../protocol.js";
import { h, notice, show } from "../dom.js";
import { scanInto } from "./record.js";
import { statusWords } from "./home.js";

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
