// The key: made on this phone, shown (text and QR) for the operator to register, backed up or restored, and what
// to do when a phone is lost.
import { setSetting, setting } from "../db.js";
import { t } from "../i18n.js";
import { backupText, BackupError, makeKey, restoreKey } from "../keys.js";
import { ORG_ID } from "../protocol.js";
import { renderSVG } from "../../vendor/uqr/index.js";
import { download, h, notice, show } from "../dom.js";
import { checkRegistration, profile, syncNow } from "../session.js";
import { act } from "./outbox.js";

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
