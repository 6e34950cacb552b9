// The flow's graph: the engine's own SVG (Graphviz), mapped to states and transitions through the
// graph's JSON form (GET /v2/flows/{id}/graph?format=json names what each SVG element id stands for),
// then lit: the current state, the path of a turn, and where the validation problems are.

import { h } from "./dom.js";

const MIN_SCALE = 0.25;
const MAX_SCALE = 3;
const MAX_FIT = 1.25;
const PADDING = 24; // the pane's own padding, both sides
const SCROLLBAR = 16; // room for the vertical scrollbar when the graph is taller than the pane
const READABLE_SCALE = 0.75; // "fit" shows the whole graph only while its text stays this large;
const SMALLEST_FIT = 0.6; // else it fits the width (down to this) and the pane scrolls down

/** What a problem's JSON pointer points at: a state (and a transition of it), the initial state, the
 * global handlers, or nothing on the graph (a flow-level field). */
export function problemTarget(pointer) {
  const parts = pointer
    .split("/")
    .slice(1)
    .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
  if (parts[0] === "states" && parts.length > 1) {
    const transition = parts[2] === "transitions" && /^\d+$/.test(parts[3] || "") ? Number(parts[3]) : null;
    return { state: parts[1], transition };
  }
  if (parts[0] === "initial_state") return { initial: true };
  if (parts[0] === "global_handlers") return { global: true };
  return null;
}

export class GraphView {
  constructor(pane, onStateClick) {
    this.pane = pane;
    this.onStateClick = onStateClick;
    this.svg = null;
    this.data = null;
    this.scale = 1;
    this.fitted = true; // refit when the window changes, until the user zooms
    window.addEventListener("resize", () => this.fitted && this.fit());
    this.nodes = new Map(); // state name -> <g>
    this.edges = new Map(); // "state#index" -> <g>
    this.handlers = new Map(); // target state of a global handler -> its <g> edges
    this.titles = new Map(); // <g> -> its tooltip without problems
  }

  message(text) {
    this.svg = null;
    this.data = null;
    this.pane.replaceChildren(h("p", { class: "hint" }, text));
  }

  render(svgText, data) {
    const parsed = new DOMParser().parseFromString(svgText, "image/svg+xml");
    if (parsed.querySelector("parsererror")) throw new Error("the engine's SVG could not be read");
    const svg = document.importNode(parsed.documentElement, true);
    svg.querySelectorAll("script, foreignObject, a").forEach((el) => el.remove());
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    svg.querySelector(":scope > g > title")?.remove();
    this.svg = svg;
    this.data = data;
    this.nodes.clear();
    this.edges.clear();
    this.handlers.clear();
    this.titles.clear();
    const nodes = new Map(data.nodes.map((node) => [node.id, node]));
    const edges = new Map(data.edges.map((edge) => [edge.id, edge]));
    for (const g of svg.querySelectorAll("g.node")) {
      const node = nodes.get(g.id);
      if (!node) continue;
      g.dataset.kind = node.kind;
      if (node.state === null) {
        this.tooltip(g, node.lines.join(" ") || "start");
        continue;
      }
      g.dataset.state = node.state;
      this.nodes.set(node.state, g);
      this.tooltip(
        g,
        node.kind === "missing" ? `${node.state} (no such state)` : `${node.state} (${node.lines[1]})`,
      );
      g.addEventListener("click", () => this.onStateClick(node.state));
    }
    for (const g of svg.querySelectorAll("g.edge")) {
      const edge = edges.get(g.id);
      if (!edge) continue;
      const target = nodes.get(edge.target);
      this.tooltip(
        g,
        `${nodes.get(edge.source)?.state ?? "start"} → ${target?.state ?? target?.lines[0]}: ${edge.lines.join(", ")}`,
      );
      if (edge.state !== null) this.edges.set(`${edge.state}#${edge.transition}`, g);
      if (edge.source === "global__" && target?.state) {
        this.handlers.set(target.state, [...(this.handlers.get(target.state) || []), g]);
      }
    }
    this.pane.replaceChildren(svg);
    this.fit();
  }

  tooltip(g, text, base = true) {
    let title = g.querySelector(":scope > title");
    if (!title)
      title = g.insertBefore(document.createElementNS("http://www.w3.org/2000/svg", "title"), g.firstChild);
    title.textContent = text;
    if (base) this.titles.set(g, text);
  }

  nodeOf(target) {
    if (!this.data || !target) return null;
    if (target.state !== undefined) return this.nodes.get(target.state) || null;
    const id = target.initial ? this.data.initial : "global__";
    return this.svg.querySelector(`g.node[id="${id}"]`);
  }

  // --- lighting ---------------------------------------------------------------------------------

  /** ``current``: the state to light; ``path``: {states, transitions: ["state#i"], start} of the turn. */
  light(current, path = { states: [], transitions: [], globals: [], start: false }) {
    if (!this.svg) return;
    this.svg
      .querySelectorAll(".lit, .visited, .taken")
      .forEach((el) => el.classList.remove("lit", "visited", "taken"));
    path.states.forEach((state) => this.nodes.get(state)?.classList.add("visited"));
    path.transitions.forEach((key) => this.edges.get(key)?.classList.add("taken"));
    path.globals.forEach((state) => this.handlers.get(state)?.forEach((g) => g.classList.add("taken")));
    if (path.start) this.svg.querySelector('g.edge[id="edge_start"]')?.classList.add("taken");
    const node = current === null ? null : this.nodes.get(current);
    if (node) {
      node.classList.add("lit");
      this.reveal(node);
    }
  }

  problems(problems) {
    if (!this.svg) return;
    this.svg.querySelectorAll(".problem-error, .problem-warning").forEach((el) => {
      el.classList.remove("problem-error", "problem-warning");
      this.tooltip(el, this.titles.get(el));
    });
    for (const problem of problems) {
      const target = problemTarget(problem.pointer);
      const marked = [this.nodeOf(target)];
      if (target?.transition !== null && target?.transition !== undefined) {
        marked.push(this.edges.get(`${target.state}#${target.transition}`));
      }
      for (const el of marked) {
        if (!el) continue;
        if (problem.severity === "error" || !el.classList.contains("problem-error")) {
          el.classList.remove("problem-warning");
          el.classList.add(`problem-${problem.severity}`);
        }
        const shown = el.querySelector(":scope > title").textContent;
        this.tooltip(el, `${shown}\n${problem.severity}: ${problem.message}`, false);
      }
    }
  }

  /** Point at a problem's place: outline it for a moment and scroll it into view. */
  focus(target) {
    const el = this.nodeOf(target);
    if (!el) return false;
    this.svg.querySelectorAll(".focus").forEach((other) => other.classList.remove("focus"));
    void el.getBoundingClientRect(); // restart the animation when the same node is focused again
    el.classList.add("focus");
    this.reveal(el, true);
    return true;
  }

  reveal(el, always = false) {
    const pane = this.pane.getBoundingClientRect();
    const box = el.getBoundingClientRect();
    const inside =
      box.top >= pane.top && box.bottom <= pane.bottom && box.left >= pane.left && box.right <= pane.right;
    if (inside && !always) return;
    this.pane.scrollBy({
      left: box.left + box.width / 2 - (pane.left + pane.width / 2),
      top: box.top + box.height / 2 - (pane.top + pane.height / 2),
      behavior: window.matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth",
    });
  }

  // --- zoom -------------------------------------------------------------------------------------

  size() {
    const box = this.svg.viewBox.baseVal;
    return { width: box.width, height: box.height };
  }

  zoom(scale, fitted = false) {
    if (!this.svg) return;
    this.fitted = fitted;
    this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, scale));
    const { width, height } = this.size();
    this.svg.setAttribute("width", `${Math.round(width * this.scale)}`);
    this.svg.setAttribute("height", `${Math.round(height * this.scale)}`);
  }

  /** The whole graph in the pane when its text stays readable; else its width, scrolled vertically. */
  fit() {
    if (!this.svg) return;
    const { width, height } = this.size();
    const room = { width: this.pane.clientWidth - PADDING, height: this.pane.clientHeight - PADDING };
    const across = Math.min(room.width / width, MAX_FIT);
    const whole = Math.min(across, room.height / height);
    this.zoom(
      whole >= READABLE_SCALE ? whole : Math.max(SMALLEST_FIT, (room.width - SCROLLBAR) / width),
      true,
    );
  }
}
