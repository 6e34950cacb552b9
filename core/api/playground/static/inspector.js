// Beside the graph: where the conversation is, the path this turn took, the intent and its confidence,
// the classifier's scores, slots and variables (what this turn changed is marked) and the A/B variant.

import { h, table } from "./dom.js";

function section(title, ...body) {
  return h("div", { class: "section" }, h("h3", {}, title), ...body);
}

function chain(states) {
  if (!states.length) return h("p", { class: "hint" }, "stayed in place");
  const items = states.flatMap((state, n) => [
    n ? h("span", { class: "arrow" }, "→") : null,
    h("span", { class: n === states.length - 1 ? "step last" : "step" }, state),
  ]);
  return h("div", { class: "chain", id: "turn-path" }, items);
}

function bar(value, label, kind = "") {
  const percent = Math.round(Math.max(0, Math.min(1, value)) * 100);
  const fill = h("span", { class: "fill" });
  fill.style.width = `${percent}%`;
  return h(
    "div",
    { class: `bar ${kind}` },
    h("span", { class: "label" }, label),
    h("span", { class: "track" }, fill),
    h("span", { class: "value mono" }, value.toFixed(2)),
  );
}

function changedKeys(updates, part) {
  return new Set(
    Object.keys(updates || {})
      .filter((key) => key.startsWith(`${part}.`))
      .map((key) => key.slice(part.length + 1)),
  );
}

/** The live view after a chat turn: ``reply`` from POST .../messages, ``context`` from GET the
 * conversation, ``path`` from the turn's history events. */
export function renderTurn(root, { reply, context, path, threshold }) {
  const intent = context.intent;
  const scores = Object.entries(reply.confidence_scores || {})
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4);
  const completed = context.run && context.run.completed;
  root.replaceChildren(
    h(
      "div",
      { class: "state-line" },
      h("span", { class: "state-name", id: "current-state" }, reply.current_state),
      completed ? h("span", { class: "badge done" }, "run completed") : null,
    ),
    h("p", { class: "hint mono" }, `${reply.flow_id}@${reply.flow_version} · channel ${context.channel}`),
    section(
      "This turn",
      chain(path.chain),
      ...path.trouble.map((line) => h("p", { class: "trouble" }, line)),
    ),
    section(
      "Intent",
      intent && intent.name
        ? bar(intent.confidence, intent.name, intent.confidence >= threshold ? "strong" : "weak")
        : h("p", { class: "hint" }, intent ? "none matched" : "not classified yet"),
      intent && intent.name && intent.confidence < threshold
        ? h("p", { class: "hint" }, `below the flow's threshold ${threshold.toFixed(2)}: not a match`)
        : null,
      scores.length
        ? h(
            "div",
            { class: "scores" },
            h("p", { class: "caption" }, "classifier scores"),
            scores.map(([name, value]) => bar(value, name)),
          )
        : null,
    ),
    section("Slots", table(context.slots, changedKeys(reply.context_updates, "slots"))),
    section("Variables", table(context.variables, changedKeys(reply.context_updates, "variables"))),
    section(
      "A/B variant",
      h("p", { class: "mono", id: "ab-variant" }, reply.ab_variant || "none (no experiment)"),
    ),
  );
}

/** The replay's view of one event: the event, the path of its turn so far and the slots filled by then. */
export function renderStep(root, { event, position, total, path, slots }) {
  root.replaceChildren(
    h(
      "div",
      { class: "state-line" },
      h("span", { class: "state-name", id: "current-state" }, event.state || "—"),
      h("span", { class: "badge" }, `event ${position} of ${total}`),
    ),
    h(
      "p",
      { class: "hint mono" },
      `${event.flow_id}@${event.flow_version} · seq ${event.seq} · ${new Date(event.ts * 1000).toLocaleTimeString()}`,
    ),
    section(
      "This turn so far",
      chain(path.chain),
      ...path.trouble.map((line) => h("p", { class: "trouble" }, line)),
    ),
    section("Slots filled so far", table(slots)),
  );
}

export function renderEmpty(root, text) {
  root.replaceChildren(h("p", { class: "hint" }, text));
}
