/**
 * The editor's only way to the server: ComfyUI's HTTP routes (comfy-compat §1) under `/api`,
 * and the `/ws` event stream (§2). JSON events are re-dispatched as DOM events named after
 * their `type`; binary preview frames (§2.2 types 1 and 4) as `b_preview` with a Blob.
 */

const PREVIEW_IMAGE = 1;
const PREVIEW_IMAGE_WITH_METADATA = 4;
const TEXT = 3;
const IMAGE_TYPES = { 1: "image/jpeg", 2: "image/png" };

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? (typeof body === "string" ? body : `HTTP ${status}`));
    this.status = status;
    this.body = body;
  }
}

export class ApiClient extends EventTarget {
  /** @param {string} base server origin, e.g. `location.origin` */
  constructor(base = "", clientId = null) {
    super();
    this.base = base.replace(/\/$/, "");
    this.clientId = clientId ?? sessionStorage.getItem("kiln.clientId") ?? crypto.randomUUID().replaceAll("-", "");
    sessionStorage.setItem("kiln.clientId", this.clientId);
    this.socket = null;
    this.reconnectDelay = 500;
  }

  url(path) {
    return `${this.base}/api${path}`;
  }

  async fetchJson(path, options = {}) {
    const response = await fetch(this.url(path), options);
    const text = await response.text();
    let body = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      /* keep the text: error pages are not JSON */
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  postJson(path, body) {
    return this.fetchJson(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  }

  objectInfo() {
    return this.fetchJson("/object_info");
  }

  /** POST /prompt; resolves `{prompt_id, number, node_errors}`, rejects with ApiError (400 body has node_errors). */
  queuePrompt(prompt, workflow, { front = false } = {}) {
    return this.postJson("/prompt", { prompt, client_id: this.clientId, front, extra_data: { extra_pnginfo: { workflow } } });
  }

  /** POST /prompt with a UI workflow, which Kiln's server compiles itself (e.g. one with subgraphs). */
  queueWorkflow(workflow, { front = false } = {}) {
    return this.postJson("/prompt", { workflow, client_id: this.clientId, front });
  }

  queue() {
    return this.fetchJson("/queue");
  }

  history(maxItems = 64) {
    return this.fetchJson(`/history?max_items=${maxItems}`);
  }

  deleteQueueItems(promptIds) {
    return this.postJson("/queue", { delete: promptIds });
  }

  clearQueue() {
    return this.postJson("/queue", { clear: true });
  }

  clearHistory() {
    return this.postJson("/history", { clear: true });
  }

  interrupt() {
    return this.postJson("/interrupt", {});
  }

  extensions() {
    return this.fetchJson("/extensions");
  }

  templates() {
    return this.fetchJson("/workflow_templates");
  }

  /** A template shipped in `web/templates/` (static file). */
  async template(name) {
    const response = await fetch(`${this.base}/templates/${encodeURIComponent(name)}.json`);
    if (!response.ok) throw new ApiError(response.status, `template ${name} not found`);
    return response.json();
  }

  settings() {
    return this.fetchJson("/settings");
  }

  saveSetting(id, value) {
    return this.postJson(`/settings/${encodeURIComponent(id)}`, value);
  }

  listUserData(dir) {
    return this.fetchJson(`/userdata?dir=${encodeURIComponent(dir)}&recurse=true`);
  }

  getUserData(file) {
    return this.fetchJson(`/userdata/${encodeURIComponent(file)}`);
  }

  async saveUserData(file, data, overwrite = true) {
    const response = await fetch(this.url(`/userdata/${encodeURIComponent(file)}?overwrite=${overwrite}`), {
      method: "POST", headers: { "Content-Type": "application/json" }, body: typeof data === "string" ? data : JSON.stringify(data, null, 2),
    });
    if (!response.ok) throw new ApiError(response.status, await response.text());
  }

  /** POST /upload/image (multipart, §1.6); resolves `{name, subfolder, type}`. */
  async uploadImage(file, { overwrite = false, subfolder = "", type = "input" } = {}) {
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("overwrite", overwrite ? "true" : "false");
    form.append("type", type);
    if (subfolder) form.append("subfolder", subfolder);
    const response = await fetch(this.url("/upload/image"), { method: "POST", body: form });
    if (!response.ok) throw new ApiError(response.status, await response.text());
    return response.json();
  }

  /** URL of an output/input/temp image (§1.5). */
  viewUrl({ filename, subfolder = "", type = "output" }, preview = null) {
    const query = new URLSearchParams({ filename, subfolder, type });
    if (preview) query.set("preview", preview);
    return `${this.base}/api/view?${query}`;
  }

  // ---- websocket -------------------------------------------------------------------------

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const host = this.base ? this.base.replace(/^https?:\/\//, "") : location.host;
    const socket = new WebSocket(`${scheme}://${host}/ws?clientId=${this.clientId}`);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.reconnectDelay = 500;
      socket.send(JSON.stringify({ type: "feature_flags", data: { supports_preview_metadata: true } }));
      this.dispatchEvent(new CustomEvent("reconnected"));
    });
    socket.addEventListener("message", (event) => this.#onMessage(event));
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.dispatchEvent(new CustomEvent("disconnected"));
      setTimeout(() => this.connect(), this.reconnectDelay);
      this.reconnectDelay = Math.min(this.reconnectDelay * 2, 8000);
    });
  }

  #onMessage(event) {
    if (event.data instanceof ArrayBuffer) {
      this.#onBinary(event.data);
      return;
    }
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message?.type) this.dispatchEvent(new CustomEvent(message.type, { detail: message.data ?? {} }));
  }

  #onBinary(buffer) {
    const view = new DataView(buffer);
    const eventType = view.getUint32(0);
    if (eventType === PREVIEW_IMAGE) {
      const mime = IMAGE_TYPES[view.getUint32(4)] ?? "image/jpeg";
      this.dispatchEvent(new CustomEvent("b_preview", { detail: { blob: new Blob([buffer.slice(8)], { type: mime }), meta: null } }));
    } else if (eventType === PREVIEW_IMAGE_WITH_METADATA) {
      const length = view.getUint32(4);
      const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, length)));
      const blob = new Blob([buffer.slice(8 + length)], { type: meta.image_type ?? "image/jpeg" });
      this.dispatchEvent(new CustomEvent("b_preview", { detail: { blob, meta } }));
    } else if (eventType === TEXT) {
      const length = view.getUint32(4);
      const nodeId = new TextDecoder().decode(new Uint8Array(buffer, 8, length));
      const text = new TextDecoder().decode(new Uint8Array(buffer, 8 + length));
      this.dispatchEvent(new CustomEvent("progress_text", { detail: { nodeId, text } }));
    }
  }
}
