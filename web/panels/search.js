/**
 * The node search box (double-click on the canvas, or a link dropped on empty space):
 * fuzzy match on name, display name and category, optionally filtered to nodes that accept
 * or produce a type; Enter or a click adds the node where the search was opened.
 */
import { typesCompatible } from "../model/nodedefs.js";
import { searchNodes } from "../model/search.js";
import { h, placeWithin } from "./dom.js";

export class NodeSearch {
  constructor(root, getDefs) {
    this.root = root;
    this.getDefs = getDefs;
    this.element = null;
  }

  close() {
    this.element?.remove();
    this.element = null;
  }

  /**
   * @param {{screen: number[], filter: {inputType?, outputType?}, onChoose: (def) => void}} options
   */
  open({ screen, filter = {}, onChoose }) {
    this.close();
    const input = h("input", { class: "search-input", placeholder: filterLabel(filter) ?? "Search nodes…", "data-testid": "node-search-input" });
    const list = h("ul", { class: "search-results" });
    const element = h("div", { class: "node-search", "data-testid": "node-search" }, input, list);
    this.root.append(element);
    this.element = element;
    placeWithin(element, screen[0], screen[1]);
    let results = [];
    let active = 0;
    const choose = (def) => {
      this.close();
      if (def) onChoose(def);
    };
    const render = () => {
      results = searchNodes(this.getDefs().values(), input.value, { ...filter, typesCompatible, limit: 40 });
      active = Math.min(active, Math.max(0, results.length - 1));
      list.replaceChildren(...results.map((def, index) => h("li", {
        class: index === active ? "active" : "", "data-node-type": def.name,
        onpointerdown: (event) => { event.preventDefault(); choose(def); },
      }, h("span", { class: "name" }, def.displayName), h("span", { class: "category" }, def.category))));
    };
    input.addEventListener("input", () => { active = 0; render(); });
    input.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown") active = Math.min(results.length - 1, active + 1);
      else if (event.key === "ArrowUp") active = Math.max(0, active - 1);
      else if (event.key === "Enter") return choose(results[active]);
      else if (event.key === "Escape") return this.close();
      else return;
      event.preventDefault();
      render();
    });
    render();
    input.focus();
  }
}

function filterLabel(filter) {
  if (filter.inputType) return `Nodes taking ${filter.inputType}…`;
  if (filter.outputType) return `Nodes giving ${filter.outputType}…`;
  return null;
}
