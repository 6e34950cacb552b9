// Upload: a flow document dropped, chosen or pasted; validated by POST /v2/flows/validate (its
// problems listed and shown on its graph, drawn unsaved by POST /v2/flows/graph), then stored
// (POST /v2/flows) and published (POST .../versions/{v}/publish).

import { ApiError, seg } from "./api.js";
import { $, plural } from "./dom.js";

/** The text as a JSON document, or a problem saying where it stops being JSON. */
export function parseDocument(text) {
  try {
    const document = JSON.parse(text);
    if (document === null || typeof document !== "object" || Array.isArray(document)) {
      return {
        problem: {
          severity: "error",
          pointer: "",
          code: "not_an_object",
          message: "a flow document is a JSON object",
        },
      };
    }
    return { document };
  } catch (error) {
    const at = /position (\d+)/.exec(error.message);
    let line = null;
    let column = null;
    if (at) {
      const before = text.slice(0, Number(at[1])).split("\n");
      line = before.length;
      column = before[before.length - 1].length + 1;
    }
    const problem = {
      severity: "error",
      pointer: "",
      code: "json_syntax",
      message: error.message,
      line,
      column,
    };
    return { problem };
  }
}

export class Upload {
  constructor(app) {
    this.app = app;
    this.text = $("#document");
    this.result = $("#upload-result");
    const zone = $("#dropzone");
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const file = event.dataTransfer.files[0];
      if (file) this.read(file);
    });
    $("#file-input").addEventListener("change", (event) => {
      const file = event.target.files[0];
      if (file) this.read(file);
    });
    $("#validate").addEventListener("click", () => this.validate());
    $("#save-publish").addEventListener("click", () => this.publish());
  }

  async read(file) {
    this.text.value = await file.text();
    await this.validate();
  }

  say(text, kind) {
    this.result.textContent = text;
    this.result.className = `result ${kind}`;
  }

  /** Validate and draw; the parsed document when it has no errors, else null. */
  async validate() {
    const { document, problem } = parseDocument(this.text.value);
    if (problem) {
      this.say("Not JSON: see Problems.", "bad");
      this.app.showProblems([problem], "the pasted document");
      return null;
    }
    let report;
    try {
      // the text as pasted, so each problem's line is a line of the box
      report = await this.app.api.post("/v2/flows/validate", this.text.value);
    } catch (error) {
      this.say(error instanceof ApiError ? `${error.code}: ${error.message}` : String(error), "bad");
      return null;
    }
    const errors = report.problems.filter((p) => p.severity === "error").length;
    const warnings = report.problems.length - errors;
    const name = `${document.flow_id}@${document.version}`;
    if (report.valid) this.say(`${name} is valid (${plural(warnings, "warning")}).`, "good");
    else
      this.say(`${name}: ${plural(errors, "error")}, ${plural(warnings, "warning")}: see Problems.`, "bad");
    await this.app.preview(document, report.problems);
    return report.valid ? document : null;
  }

  async publish() {
    const document = await this.validate();
    if (!document) return;
    const api = this.app.api;
    try {
      const created = await api.post("/v2/flows", document);
      await api.post(`/v2/flows/${seg(created.flow_id)}/versions/${seg(created.version)}/publish`);
      this.say(`${created.flow_id}@${created.version} is stored and published.`, "good");
      await this.app.loadFlows(created.flow_id, created.version);
    } catch (error) {
      const message = error instanceof ApiError ? `${error.code}: ${error.message}` : String(error);
      this.say(error.status === 409 ? `${message} (give it a new version number)` : message, "bad");
    }
  }
}
