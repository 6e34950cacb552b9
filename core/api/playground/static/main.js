// The playground's wiring: credentials, the flow and version pickers, the problems list, and the graph
// that the chat, the replay and the upload light up. Everything comes from the public REST API.

import { Api, ApiError, seg } from "./api.js";
import { Chat } from "./chat.js";
import { $, h, plural, show } from "./dom.js";
import { pathOf, slotsAt } from "./events.js";
import { GraphView, problemTarget } from "./graph.js";
import { renderEmpty, renderStep, renderTurn } from "./inspector.js";
import { Replay } from "./replay.js";
import { Upload } from "./upload.js";

const ZOOM_STEP = 1.25;
const NOTICE_MS = 8000;
const DEFAULT_THRESHOLD = 0.7; // SPEC §2: settings.confidence_threshold

/** A JSON pointer that wraps after its slashes, not inside a name. */
/** The stored version a conversation's version is drawn as: an A/B variant's patched flow
 * ("1.0.0+experiment.variant", docs/experiments.md) is its base version with a merge patch. */
function storedVersion(version) {
  return version.split("+")[0];
}

function breakable(pointer) {
  return pointer.split("/").flatMap((part, n) => (n ? ["/", h("wbr"), part] : [part]));
}

function where(problem) {
  if (!problem.line) return "";
  return ` · line ${problem.line}${problem.column ? `:${problem.column}` : ""}`;
}

function message(error) {
  return error instanceof ApiError ? `${error.code}: ${error.message}` : String(error);
}

class App {
  constructor() {
    this.api = null;
    this.flowId = null;
    this.version = null;
    this.versions = [];
    this.shown = null; // "flow@version" or "preview": what the graph draws
    this.problemList = [];
    this.threshold = DEFAULT_THRESHOLD; // the shown version's settings.confidence_threshold
    this.graph = new GraphView($("#graph"), (state) => this.stateClicked(state));
    this.chat = new Chat(this);
    this.replay = new Replay(this);
    this.upload = new Upload(this);
    this.noticeTimer = null;
    this.wire();
  }

  wire() {
    $("#connect-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const mode = $("#credential").dataset.mode;
      this.connect(new Api({ mode, value: $("#credential").value.trim() }));
    });
    $("#sign-out").addEventListener("click", () => {
      Api.forget();
      window.location.reload();
    });
    $("#flow-select").addEventListener("change", (event) => this.run(this.selectFlow(event.target.value)));
    $("#version-select").addEventListener("change", (event) =>
      this.run(this.showVersion(this.flowId, event.target.value)),
    );
    $("#publish-version").addEventListener("click", () => this.run(this.publishVersion()));
    $("#zoom-in").addEventListener("click", () => this.graph.zoom(this.graph.scale * ZOOM_STEP));
    $("#zoom-out").addEventListener("click", () => this.graph.zoom(this.graph.scale / ZOOM_STEP));
    $("#zoom-fit").addEventListener("click", () => this.graph.fit());
    $("#close-preview").addEventListener("click", () =>
      this.run(this.showVersion(this.flowId, this.version)),
    );
    for (const tab of document.querySelectorAll("[data-tab]")) {
      tab.addEventListener("click", () => this.openTab(tab.dataset.tab));
    }
  }

  async start() {
    const stored = Api.stored();
    if (stored) await this.connect(stored);
    else await this.askCredentials();
  }

  /** Run an action of the page, showing its failure instead of losing it in the console. */
  async run(promise) {
    try {
      return await promise;
    } catch (error) {
      this.notify(message(error));
      return undefined;
    }
  }

  notify(text) {
    const notice = $("#notice");
    notice.textContent = text;
    show(notice, true);
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => show(notice, false), NOTICE_MS);
  }

  openTab(name) {
    for (const tab of document.querySelectorAll("[data-tab]")) {
      tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
      show($(`#tab-${tab.dataset.tab}`), tab.dataset.tab === name);
    }
    if (name === "replay") this.replay.suggest(this.chat.conversationId);
  }

  // --- credentials ------------------------------------------------------------------------------

  async askCredentials(error = "") {
    const mode = await Api.authMode();
    const field = $("#credential");
    field.dataset.mode = mode;
    field.type = mode === "key" ? "password" : "text";
    field.value = "";
    $("#credential-label").textContent = mode === "key" ? "Tenant API key" : "Tenant id";
    $("#connect-mode").textContent =
      mode === "key"
        ? "This engine checks API keys: give the key of the tenant whose flows you want to see (sent as Authorization: Bearer)."
        : "Auth is off on this engine (MCP_AUTH=off): name the tenant to act as (sent as X-Tenant-ID).";
    $("#connect-error").textContent = error;
    show($("#connect-error"), Boolean(error));
    show($("#connect"), true);
    field.focus();
  }

  async connect(api) {
    let flows;
    try {
      flows = (await api.get("/v2/flows")).flows;
    } catch (error) {
      Api.forget();
      await this.askCredentials(message(error));
      return;
    }
    this.api = api;
    api.remember();
    show($("#connect"), false);
    const tenants = [...new Set(flows.map((flow) => flow.tenant_id))];
    $("#who").textContent =
      api.credentials.mode === "tenant" || !tenants.length
        ? api.label
        : `tenant ${tenants[0]} (${api.label})`;
    show($("#sign-out"), true);
    await this.run(this.loadFlows());
  }

  // --- flows and versions -----------------------------------------------------------------------

  async loadFlows(flowId = null, version = null) {
    const flows = (await this.api.get("/v2/flows")).flows.sort((a, b) => a.flow_id.localeCompare(b.flow_id));
    const select = $("#flow-select");
    select.replaceChildren(
      ...flows.map((flow) =>
        h("option", { value: flow.flow_id }, `${flow.name || flow.flow_id} (${flow.flow_id})`),
      ),
    );
    select.disabled = !flows.length;
    if (!flows.length) {
      this.graph.message("This tenant has no flows yet: upload one (Upload tab).");
      this.chat.enable(false);
      this.openTab("upload");
      return;
    }
    const wanted = flows.some((flow) => flow.flow_id === (flowId || this.flowId))
      ? flowId || this.flowId
      : flows[0].flow_id;
    await this.selectFlow(wanted, version);
  }

  /** Show ``flowId`` (at ``version``, else its published one); a new chat unless ``keepChat``. */
  async selectFlow(flowId, version = null, keepChat = false) {
    version = version && storedVersion(version);
    const list = await this.api.get(`/v2/flows/${seg(flowId)}/versions`);
    this.flowId = flowId;
    this.versions = list.versions.slice().reverse();
    $("#flow-select").value = flowId;
    const select = $("#version-select");
    select.replaceChildren(
      ...this.versions.map((v) =>
        h(
          "option",
          { value: v.version },
          `${v.version}${v.status === "published" ? " · published" : " · draft"}`,
        ),
      ),
    );
    select.disabled = false;
    const published = this.versions.find((v) => v.status === "published");
    await this.showVersion(flowId, version || (published || this.versions[0]).version);
    if (!keepChat) this.chat.start(flowId);
  }

  async showVersion(flowId, version) {
    this.version = version;
    $("#version-select").value = version;
    const about = this.versions.find((v) => v.version === version);
    const status = $("#version-status");
    status.textContent =
      about.status === "published" ? "published: new chats run it" : "draft: chats run the published version";
    status.className = `badge ${about.status}`;
    show(status, true);
    show($("#publish-version"), about.status !== "published");
    const stored = await this.api.get(`/v2/flows/${seg(flowId)}/versions/${seg(version)}`);
    this.channels(stored.document);
    this.threshold = stored.document.settings?.confidence_threshold ?? DEFAULT_THRESHOLD;
    await this.showGraph(flowId, version);
    const report = await this.api.post("/v2/flows/validate", stored.document);
    // lines of the JSON sent, which the designer never sees: the pointer says where
    const problems = report.problems.map(({ line, column, ...problem }) => problem);
    this.showProblems(problems, `${flowId}@${version}`);
  }

  async publishVersion() {
    await this.api.post(`/v2/flows/${seg(this.flowId)}/versions/${seg(this.version)}/publish`);
    await this.selectFlow(this.flowId, this.version, true);
    this.notify(`${this.flowId}@${this.version} is published: new conversations run it.`);
  }

  channels(document) {
    const found = new Set(["default"]);
    for (const state of Object.values(document.states || {})) {
      for (const key of Object.keys(state.config?.response_templates || {})) found.add(key);
    }
    $("#channels").replaceChildren(...[...found].sort().map((name) => h("option", { value: name })));
  }

  // --- the graph and its problems ---------------------------------------------------------------

  /** Draw the SVG that ``request(format, as)`` fetches, mapped by its JSON form; that JSON. */
  async draw(request) {
    const [svg, data] = await Promise.all([request("svg", "text"), request("json", "json")]);
    this.graph.render(svg, data);
    return data;
  }

  async showGraph(flowId, version) {
    const key = `${flowId}@${version}`;
    if (this.shown === key) return;
    const url = `/v2/flows/${seg(flowId)}/graph`;
    const data = await this.draw((format, as) => this.api.get(url, { format, version }, as));
    this.shown = key;
    $("#graph-title").textContent = data.title;
    show($("#close-preview"), false);
  }

  async preview(document, problems) {
    const label = `${document.flow_id || "?"}@${document.version || "?"}`;
    try {
      const data = await this.draw((format, as) =>
        this.api.post("/v2/flows/graph", document, { format }, as),
      );
      $("#graph-title").textContent = `Preview: ${data.title} (not saved)`;
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 422)) throw error;
      this.graph.message(
        "This document is not a flow yet: fix the errors listed under Problems to see its graph.",
      );
      $("#graph-title").textContent = `Preview of ${label}`;
    }
    this.shown = "preview";
    this.showProblems(problems, `the uploaded document ${label}`);
    const back = $("#close-preview");
    back.textContent = `Back to ${this.flowId}@${this.version}`;
    show(back, Boolean(this.flowId));
  }

  showProblems(problems, source) {
    this.problemList = problems;
    const errors = problems.filter((p) => p.severity === "error").length;
    const count = $("#problems-count");
    count.textContent = problems.length
      ? `${plural(errors, "error")}, ${plural(problems.length - errors, "warning")}`
      : "none";
    count.className = `count ${errors ? "bad" : problems.length ? "warn" : "good"}`;
    $("#problems-source").textContent = `in ${source}`;
    $("#problems").replaceChildren(
      ...problems.map((problem, n) =>
        h(
          "li",
          {
            class: `problem ${problem.severity}`,
            tabindex: "0",
            dataset: { index: String(n) },
            onclick: () => this.problemClicked(n),
            onkeydown: (event) => event.key === "Enter" && this.problemClicked(n),
          },
          h("span", { class: "where mono" }, breakable(problem.pointer || "/"), where(problem)),
          h("span", { class: "what" }, problem.message),
          h("span", { class: "code mono" }, problem.code),
        ),
      ),
    );
    if (!problems.length) $("#problems").append(h("li", { class: "hint" }, "No errors, no warnings."));
    this.graph.problems(problems);
  }

  problemClicked(index) {
    const items = $("#problems").children;
    for (const item of items) item.classList.toggle("selected", item.dataset.index === String(index));
    const problem = this.problemList[index];
    if (!this.graph.focus(problemTarget(problem.pointer)))
      this.notify(`${problem.pointer || "/"} is about the whole flow, not one state.`);
  }

  stateClicked(state) {
    const items = $("#problems").children;
    for (const item of items) {
      const target = problemTarget(this.problemList[Number(item.dataset.index)]?.pointer || "");
      item.classList.toggle("selected", target?.state === state);
    }
  }

  // --- what the chat and the replay report ------------------------------------------------------

  /** After a chat turn: follow the conversation's flow version, light its state and path. */
  async turnTaken(reply, context, events) {
    if (this.shown !== `${reply.flow_id}@${storedVersion(reply.flow_version)}`) {
      await this.selectFlow(reply.flow_id, reply.flow_version, true);
    }
    const path = pathOf(events, reply.flow_id, reply.flow_version);
    this.graph.light(reply.current_state, path);
    renderTurn($("#inspector-body"), { reply, context, path, threshold: this.threshold });
    this.replay.suggest(this.chat.conversationId);
    return path;
  }

  chatCleared() {
    this.graph.light(null);
    renderEmpty(
      $("#inspector-body"),
      "Send a message to see the state, the path of the turn, the intent, slots and variables here.",
    );
  }

  async replayStep(events, index) {
    const event = events[index];
    if (this.shown !== `${event.flow_id}@${storedVersion(event.flow_version)}`) {
      await this.run(this.selectFlow(event.flow_id, event.flow_version, true));
    }
    let start = index;
    while (start > 0 && events[start].type !== "message_in") start--;
    const turn = events.slice(start, index + 1);
    const path = pathOf(turn, event.flow_id, event.flow_version);
    this.graph.light(event.state, path);
    const slots = slotsAt(events, index);
    renderStep($("#inspector-body"), { event, position: index + 1, total: events.length, path, slots });
  }
}

const app = new App();
app.start();
