/**
 * The path of graph levels shown above the canvas while a subgraph is open
 * ("Workflow › Encode prompts › Negative encoder"); clicking a level goes back to it.
 * Hidden at the workflow level.
 */
import { h } from "./dom.js";

export class Breadcrumb {
  /** @param {(depth: number) => void} onChoose called with the level clicked (0: the workflow) */
  constructor(onChoose) {
    this.onChoose = onChoose;
    this.element = h("nav", { class: "breadcrumb hidden", "data-testid": "breadcrumb" });
  }

  /** Show `editor`'s levels (hidden when it shows the workflow itself). */
  show(editor) {
    const levels = editor?.levels ?? [];
    this.element.classList.toggle("hidden", levels.length <= 1);
    const items = levels.map((level, depth) => {
      const label = depth === 0 ? editor.name : level.title;
      if (depth === levels.length - 1) return h("span", { class: "crumb current", "data-testid": `crumb-${depth}` }, label);
      return h("button", { class: "crumb", "data-testid": `crumb-${depth}`, onclick: () => this.onChoose(depth) }, label);
    });
    this.element.replaceChildren(...items.flatMap((item, index) => (index ? [h("span", { class: "crumb-sep" }, "›"), item] : [item])));
  }
}
