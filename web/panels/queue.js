/**
 * The queue and history panel (GET /queue, GET /history, comfy-compat §1.4) and the gallery
 * of output images: pending items can be cancelled, finished ones reloaded into a new tab.
 */
import { h } from "./dom.js";

export class QueuePanel {
  constructor(element, app) {
    this.element = element;
    this.app = app;
    this.gallery = [];
  }

  addImages(images) {
    this.gallery.unshift(...images);
    this.gallery.length = Math.min(this.gallery.length, 200);
  }

  async refresh() {
    const { api } = this.app;
    let queue = { queue_running: [], queue_pending: [] };
    let history = {};
    try {
      [queue, history] = await Promise.all([api.queue(), api.history(30)]);
    } catch (error) {
      this.element.replaceChildren(h("div", { class: "panel-title" }, "Queue"), h("p", {}, `Cannot reach the server: ${error.message}`));
      return;
    }
    const pending = [...queue.queue_pending].sort((a, b) => a[0] - b[0]);
    const entries = Object.entries(history).reverse();
    this.element.replaceChildren(
      h("div", { class: "panel-title" }, "Queue",
        h("button", { class: "small", onclick: () => api.clearQueue().then(() => this.refresh()) }, "Clear"),
        h("button", { class: "small", onclick: () => api.clearHistory().then(() => this.refresh()) }, "Clear history")),
      h("div", { class: "queue-list", "data-testid": "queue-list" },
        ...queue.queue_running.map((item) => this.item(item, "running")),
        ...pending.map((item) => this.item(item, "pending")),
        ...entries.map(([id, entry]) => this.historyItem(id, entry))),
      h("div", { class: "panel-title" }, "Gallery"),
      h("div", { class: "gallery", "data-testid": "gallery" }, ...this.gallery.map((image) => h("a", { href: this.app.api.viewUrl(image), target: "_blank" },
        h("img", { src: this.app.api.viewUrl(image), title: image.filename, loading: "lazy" })))),
    );
  }

  item(item, state) {
    const [number, promptId] = item;
    return h("div", { class: `queue-item ${state}` },
      h("span", {}, `${state === "running" ? "▶" : "⏳"} #${number} ${promptId.slice(0, 8)}`),
      state === "pending" ? h("button", { class: "small", onclick: () => this.app.api.deleteQueueItems([promptId]).then(() => this.refresh()) }, "Cancel")
        : h("button", { class: "small", onclick: () => this.app.api.interrupt() }, "Interrupt"));
  }

  historyItem(promptId, entry) {
    const images = Object.values(entry.outputs ?? {}).flatMap((output) => output.images ?? []);
    const workflow = entry.prompt?.[3]?.extra_pnginfo?.workflow;
    const ok = entry.status?.status_str !== "error";
    return h("div", { class: `queue-item done ${ok ? "success" : "error"}` },
      h("span", {}, `${ok ? "✔" : "✖"} ${promptId.slice(0, 8)}`),
      ...images.slice(0, 3).map((image) => h("img", { class: "thumb", src: this.app.api.viewUrl(image) })),
      workflow ? h("button", { class: "small", onclick: () => this.app.openWorkflow(workflow, `history ${promptId.slice(0, 8)}`) }, "Load") : null);
  }
}
