// The public REST API (/v2), with the credentials a REST client of the tenant would use: a tenant key
// as "Authorization: Bearer", or, on an engine with MCP_AUTH=off, a tenant id as "X-Tenant-ID".
// They are kept in sessionStorage: this tab only, gone when it closes.

const STORAGE_KEY = "mcp-engine.playground.credentials";

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || `http_${status}`;
    this.details = error.details || {};
  }
}

export class Api {
  constructor(credentials) {
    this.credentials = credentials; // {mode: "key" | "tenant", value}
  }

  static stored() {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    try {
      const credentials = JSON.parse(raw);
      return credentials && credentials.value ? new Api(credentials) : null;
    } catch {
      return null;
    }
  }

  static forget() {
    sessionStorage.removeItem(STORAGE_KEY);
  }

  /** "key" when the engine wants API keys (401 without one), "tenant" when auth is off. */
  static async authMode() {
    const response = await fetch("/v2/flows");
    return response.status === 401 ? "key" : "tenant";
  }

  remember() {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(this.credentials));
  }

  get label() {
    const { mode, value } = this.credentials;
    return mode === "tenant" ? `tenant ${value}` : `key …${value.slice(-4)}`;
  }

  headers() {
    const { mode, value } = this.credentials;
    return mode === "tenant" ? { "X-Tenant-ID": value } : { Authorization: `Bearer ${value}` };
  }

  async request(method, path, { body, query, as = "json" } = {}) {
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null) url.searchParams.set(key, value);
    }
    const init = { method, headers: this.headers() };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = typeof body === "string" ? body : JSON.stringify(body);
    }
    const response = await fetch(url, init);
    if (!response.ok) {
      let error = { message: `${response.status} ${response.statusText}` };
      try {
        error = (await response.json()).error || error;
      } catch {
        // not the API's JSON error (a proxy's page): keep the status line
      }
      throw new ApiError(response.status, error);
    }
    if (response.status === 204) return null;
    return as === "text" ? response.text() : response.json();
  }

  get(path, query, as) {
    return this.request("GET", path, { query, as });
  }

  post(path, body, query, as) {
    return this.request("POST", path, { body, query, as });
  }

  delete(path) {
    return this.request("DELETE", path);
  }
}

/** A path segment, escaped (conversation ids may hold any character but "/"). */
export const seg = (text) => encodeURIComponent(text);
