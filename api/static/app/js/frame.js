// Around every screen: the bar (the network, the outbox) and the language menu.
import { outboxItems, setSetting } from "./db.js";
import { lang, languages, t, useLanguage } from "./i18n.js";
import { h } from "./dom.js";
import { route } from "./router.js";

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
