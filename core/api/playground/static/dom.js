// Small DOM helpers. Every text from the engine (flow names, messages, slot values) goes in through
// textContent, never innerHTML: a flow document is user data.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

export function show(el, visible) {
  el.hidden = !visible;
}

/** "1 error", "2 errors". */
export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

/** A value as a designer reads it: strings bare, everything else as JSON. */
export function shown(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** A key/value table; ``changed`` keys are marked (what this turn changed). */
export function table(values, changed = new Set()) {
  const keys = Object.keys(values || {});
  if (!keys.length) return h("p", { class: "hint" }, "none");
  return h(
    "table",
    { class: "kv" },
    keys.map((key) =>
      h(
        "tr",
        { class: changed.has(key) ? "changed" : null },
        h("th", {}, key),
        h("td", { class: "mono" }, shown(values[key])),
      ),
    ),
  );
}
