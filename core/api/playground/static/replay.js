// Replay: any conversation of the tenant, read from GET /v2/conversations/{id}/history (every page,
// oldest first), stepped through event by event on the graph of the flow version each event ran on.

import { ApiError, seg } from "./api.js";
import { $, h } from "./dom.js";
import { describe, kindOf } from "./events.js";

const PAGE = 500;
const MAX_PAGES = 20; // 10,000 events: far more than a designer steps through
const PLAY_MS = 700;

export class Replay {
  constructor(app) {
    this.app = app;
    this.events = [];
    this.index = 0;
    this.timer = null;
    this.timeline = $("#timeline");
    this.slider = $("#replay-slider");
    $("#replay-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = $("#replay-id").value.trim();
      if (id) this.load(id);
    });
    $("#replay-first").addEventListener("click", () => this.go(0));
    $("#replay-prev").addEventListener("click", () => this.go(this.index - 1));
    $("#replay-next").addEventListener("click", () => this.go(this.index + 1));
    $("#replay-last").addEventListener("click", () => this.go(this.events.length - 1));
    $("#replay-play").addEventListener("click", () => this.toggle());
    this.slider.addEventListener("input", () => this.go(Number(this.slider.value)));
  }

  suggest(conversationId) {
    const field = $("#replay-id");
    if (!field.value || field.dataset.suggested === "yes") {
      field.value = conversationId;
      field.dataset.suggested = "yes";
    }
  }

  async load(conversationId) {
    this.stop();
    const summary = $("#replay-summary");
    summary.textContent = `Loading ${conversationId}…`;
    const events = [];
    let before;
    try {
      for (let page = 0; page < MAX_PAGES; page++) {
        const history = await this.app.api.get(`/v2/conversations/${seg(conversationId)}/history`, {
          limit: PAGE,
          before,
        });
        events.push(...history.events);
        if (history.next_before === null) break;
        before = history.next_before;
      }
    } catch (error) {
      summary.textContent = error instanceof ApiError ? `${error.code}: ${error.message}` : String(error);
      return;
    }
    events.reverse();
    this.events = events;
    const turns = events.filter((event) => event.type === "message_in").length;
    const flows = [...new Set(events.map((event) => `${event.flow_id}@${event.flow_version}`))];
    summary.textContent = events.length
      ? `${events.length} events, ${turns} messages, on ${flows.join(", ")}.`
      : `No history for ${conversationId} in this tenant.`;
    this.timeline.replaceChildren(
      ...events.map((event, n) =>
        h(
          "li",
          { class: `event ${kindOf(event)}`, dataset: { index: String(n) }, onclick: () => this.go(n) },
          h("span", { class: "seq mono" }, String(event.seq)),
          h("span", { class: "what" }, describe(event)),
        ),
      ),
    );
    this.slider.max = String(Math.max(0, events.length - 1));
    this.slider.disabled = !events.length;
    $("#replay-position").textContent = "";
    if (events.length) await this.go(0);
  }

  async go(index) {
    if (!this.events.length) return;
    this.index = Math.max(0, Math.min(this.events.length - 1, index));
    this.slider.value = String(this.index);
    $("#replay-position").textContent = `${this.index + 1} / ${this.events.length}`;
    this.timeline.querySelectorAll(".current").forEach((row) => row.classList.remove("current"));
    const row = this.timeline.children[this.index];
    row.classList.add("current");
    row.scrollIntoView({ block: "nearest" });
    await this.app.replayStep(this.events, this.index);
    if (this.index === this.events.length - 1) this.stop();
  }

  toggle() {
    if (this.timer !== null) {
      this.stop();
      return;
    }
    if (this.index >= this.events.length - 1) this.index = -1;
    $("#replay-play").textContent = "Pause";
    const tick = async () => {
      await this.go(this.index + 1);
      if (this.timer !== null) this.timer = setTimeout(tick, PLAY_MS);
    };
    this.timer = setTimeout(tick, 0);
  }

  stop() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    $("#replay-play").textContent = "Play";
  }
}
