/** The help dialog: what the editor does and the keyboard shortcuts table. */
import { SHORTCUTS } from "../interaction/keys.js";
import { h } from "./dom.js";

export function helpBody() {
  return h("div", { class: "help" },
    h("p", {}, "Double-click the canvas to add a node; drag from an output dot to an input to link; drop a link on empty space to pick a node for it. Drag empty space to pan, Ctrl-drag to box-select."),
    h("table", {}, ...SHORTCUTS.map(([combo, description]) => h("tr", {}, h("td", {}, h("kbd", {}, combo)), h("td", {}, description)))));
}
