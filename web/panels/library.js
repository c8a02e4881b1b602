/**
 * The node library side panel: every node type in a category tree with a filter box;
 * clicking a node adds it at the centre of the view, dragging it drops it where released.
 */
import { h } from "./dom.js";

export class LibraryPanel {
  constructor(element, app) {
    this.element = element;
    this.app = app;
    this.filter = h("input", { class: "library-filter", placeholder: "Filter nodes…", oninput: () => this.render() });
    this.tree = h("div", { class: "library-tree" });
    this.open = new Set();
    element.replaceChildren(h("div", { class: "panel-title" }, "Node library"), this.filter, this.tree);
  }

  render() {
    const query = this.filter.value.toLowerCase();
    const byCategory = new Map();
    for (const def of this.app.defs.values()) {
      if (def.deprecated) continue;
      const text = `${def.displayName} ${def.name} ${def.category}`.toLowerCase();
      if (query && !text.includes(query)) continue;
      if (!byCategory.has(def.category)) byCategory.set(def.category, []);
      byCategory.get(def.category).push(def);
    }
    const categories = [...byCategory.keys()].sort();
    this.tree.replaceChildren(...categories.map((category) => {
      const expanded = Boolean(query) || this.open.has(category);
      const defs = byCategory.get(category).sort((a, b) => a.displayName.localeCompare(b.displayName));
      return h("div", { class: "library-category" },
        h("div", {
          class: `category-name${expanded ? " open" : ""}`,
          onclick: () => {
            if (this.open.has(category)) this.open.delete(category);
            else this.open.add(category);
            this.render();
          },
        }, `${expanded ? "▾" : "▸"} ${category} (${defs.length})`),
        expanded ? h("div", { class: "category-nodes" }, ...defs.map((def) => h("div", {
          class: "library-node", title: def.description || def.name, draggable: "true", "data-node-type": def.name,
          onclick: () => this.app.addNodeAtCenter(def.name),
          ondragstart: (event) => event.dataTransfer.setData("application/x-kiln-node", def.name),
        }, def.displayName))) : null);
    }));
  }
}
