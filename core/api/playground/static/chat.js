// The chat panel: a conversation with the engine through POST /v2/conversations/{id}/messages, as any
// REST client would hold it. After each turn it reads the conversation (GET .../{id}) for slots,
// variables and intent, and the turn's own events (GET .../history, newer than the last seen) for the
// path the turn took.

import { ApiError, seg } from "./api.js";
import { $, h } from "./dom.js";

const HISTORY_PAGE = 200;
const HISTORY_PAGES = 5; // a turn has at most max_steps transitions: a few dozen events

function newId() {
  return `pg-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

export class Chat {
  constructor(app) {
    this.app = app;
    this.list = $("#messages");
    this.input = $("#chat-input");
    this.send = $("#send");
    this.channel = $("#channel");
    this.flowId = null;
    this.conversationId = newId();
    this.started = false; // the first message names the flow (hints.force_flow); later ones follow it
    this.lastSeq = 0;
    $("#chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = this.input.value.trim();
      if (text) this.say(text);
    });
    $("#reset").addEventListener("click", () => this.reset());
    $("#new-conversation").addEventListener("click", () => this.start(this.flowId));
  }

  /** A new conversation on ``flowId`` (a fresh id: the old one stays in the history, for replay). */
  start(flowId) {
    this.flowId = flowId;
    this.conversationId = newId();
    this.started = false;
    this.lastSeq = 0;
    this.list.replaceChildren();
    this.note(`New conversation on ${flowId}: say something.`);
    this.enable(Boolean(flowId));
    this.describe();
    this.app.chatCleared();
  }

  describe() {
    $("#conversation-line").textContent = `conversation ${this.conversationId}`;
  }

  enable(on) {
    this.input.disabled = !on;
    this.send.disabled = !on;
    $("#reset").disabled = !this.flowId;
    $("#new-conversation").disabled = !this.flowId;
    if (on) this.input.focus();
  }

  note(text, kind = "note") {
    this.list.append(h("li", { class: `msg ${kind}` }, text));
    this.list.scrollTop = this.list.scrollHeight;
  }

  bubble(text, who, attributes = {}) {
    const meta = Object.entries(attributes)
      .filter(([key]) => key !== "response_type" || attributes[key] !== "text")
      .map(([key, value]) => `${key}=${value}`)
      .join(" ");
    this.list.append(
      h(
        "li",
        { class: `msg ${who}` },
        h("span", { class: "text" }, text),
        meta ? h("span", { class: "meta" }, meta) : null,
      ),
    );
    this.list.scrollTop = this.list.scrollHeight;
  }

  async say(text) {
    const api = this.app.api;
    const url = `/v2/conversations/${seg(this.conversationId)}`;
    const body = {
      user_id: "playground",
      channel: this.channel.value.trim() || "default",
      content: { type: "text", text },
    };
    if (!this.started) body.hints = { force_flow: this.flowId };
    this.input.value = "";
    this.bubble(text, "user");
    this.enable(false);
    try {
      const reply = await api.post(`${url}/messages`, body);
      this.started = true;
      for (const message of reply.messages) this.bubble(message.text, "bot", message.attributes);
      const [conversation, events] = await Promise.all([api.get(url), this.turnEvents(url)]);
      const path = await this.app.turnTaken(reply, conversation.context, events);
      this.note(path.chain.length ? path.chain.join(" → ") : `stayed in ${reply.current_state}`, "path");
      if (conversation.context.run?.completed)
        this.note("The run is completed: the next message starts a new run.");
    } catch (error) {
      this.note(error instanceof ApiError ? `${error.code}: ${error.message}` : String(error), "error");
    } finally {
      this.enable(true);
    }
  }

  /** The events newer than the last turn's, oldest first. */
  async turnEvents(url) {
    const found = [];
    let before;
    for (let page = 0; page < HISTORY_PAGES; page++) {
      const history = await this.app.api.get(`${url}/history`, { limit: HISTORY_PAGE, before });
      const newer = history.events.filter((event) => event.seq > this.lastSeq);
      found.push(...newer);
      if (newer.length < history.events.length || history.next_before === null) break;
      before = history.next_before;
    }
    found.reverse();
    if (found.length) this.lastSeq = found[found.length - 1].seq;
    return found;
  }

  async reset() {
    if (this.started) {
      try {
        await this.app.api.delete(`/v2/conversations/${seg(this.conversationId)}`);
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) {
          this.note(`${error.code}: ${error.message}`, "error");
          return;
        }
      }
    }
    this.started = false;
    this.list.replaceChildren();
    this.note(`Conversation ${this.conversationId} reset: the next message starts afresh on ${this.flowId}.`);
    this.enable(Boolean(this.flowId));
    this.app.chatCleared();
  }
}
