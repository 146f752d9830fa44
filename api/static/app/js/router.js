// Which screen the address names (#/, #/record/<action>, #/outbox, #/key, #/check).
import { home } from "./screens/home.js";
import { formScreen } from "./screens/record.js";
import { outboxScreen } from "./screens/outbox.js";
import { keyScreen } from "./screens/key.js";
import { checkScreen } from "./screens/check.js";

export async function route() {
  const [, screen, arg] = (location.hash || "#/").split("/");
  if (screen === "record" && arg) return formScreen(arg);
  if (screen === "outbox") return outboxScreen();
  if (screen === "key") return keyScreen();
  if (screen === "check") return checkScreen();
  return home();
}
