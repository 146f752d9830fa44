// DOM helpers for the screens: elements, the main area, notices, files saved from the phone.

const main = () => document.getElementById("main");

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

export function show(...nodes) {
  main().replaceChildren(...nodes.flat().filter((node) => node !== null && node !== undefined && node !== false));
  window.scrollTo(0, 0);
}

export function notice(kind, text) {
  return h("p", { class: `notice ${kind}`, role: kind === "bad" ? "alert" : "status" }, text);
}

export function saveFile(name, blob) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function download(name, text) {
  saveFile(name, new Blob([text], { type: "application/json" }));
}
