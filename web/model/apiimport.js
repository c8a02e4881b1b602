/**
 * An API-format prompt (comfy-compat §3) opened as a graph: one node per entry with the
 * same id, widget values taken by input name, links from `[id, slot]` pairs, and nodes laid
 * out in columns by their depth in the graph (the API format has no positions).
 */
import { defaultWidgetValues, widgetsForDef } from "./widgets.js";
import { Graph } from "./graph.js";

const COLUMN_W = 340;
const ROW_GAP = 40;

const isLink = (value) => Array.isArray(value) && value.length === 2 && typeof value[0] === "string" && Number.isInteger(value[1]);

function depths(prompt) {
  const memo = new Map();
  const depthOf = (id, stack = new Set()) => {
    if (memo.has(id)) return memo.get(id);
    if (stack.has(id) || !prompt[id]) return 0;
    stack.add(id);
    const upstream = Object.values(prompt[id].inputs ?? {}).filter(isLink).map(([source]) => depthOf(source, stack) + 1);
    const depth = Math.max(0, ...upstream);
    memo.set(id, depth);
    return depth;
  };
  for (const id of Object.keys(prompt)) depthOf(id);
  return memo;
}

/** Build a UI workflow (0.4) from an API prompt, using `defs` for slots and widgets. */
export function promptToWorkflow(prompt, defs) {
  const graph = new Graph(defs);
  const depth = depths(prompt);
  const columnHeights = new Map();
  const ids = Object.keys(prompt).sort((a, b) => Number(a) - Number(b));
  let lastNodeId = 0;
  for (const id of ids) {
    const entry = prompt[id];
    const def = defs.get(entry.class_type);
    const column = depth.get(id) ?? 0;
    const top = columnHeights.get(column) ?? 0;
    const json = graph.newNodeJson(entry.class_type, [column * COLUMN_W, top]);
    if (def) {
      const widgets = widgetsForDef(def);
      const values = defaultWidgetValues(widgets);
      widgets.forEach((widget, index) => {
        const value = entry.inputs?.[widget.name];
        if (widget.serialize && value !== undefined && !isLink(value)) values[index] = value?.__value__ ?? value;
        if (widget.kind === "CONTROL") values[index] = "fixed";
      });
      json.widgets_values = values;
    } else {
      json.inputs = Object.entries(entry.inputs ?? {}).filter(([, value]) => isLink(value)).map(([name]) => ({ name, type: "*", link: null }));
      json.widgets_values = Object.values(entry.inputs ?? {}).filter((value) => !isLink(value));
    }
    if (entry._meta?.title) json.title = entry._meta.title;
    columnHeights.set(column, top + Math.max(json.size[1], 80 + (json.widgets_values?.length ?? 0) * 26) + ROW_GAP);
    graph.store.put([{ ...json, id: `node:${id}`, typeName: "node", jsonId: Number.isNaN(Number(id)) ? id : Number(id), rank: ids.indexOf(id) }]);
    lastNodeId = Math.max(lastNodeId, Number(id) || 0);
  }
  graph.store.update("document", { lastNodeId });
  for (const id of ids) {
    const target = graph.node(id);
    for (const [name, value] of Object.entries(prompt[id].inputs ?? {})) {
      if (!isLink(value) || !graph.node(value[0])) continue;
      const slot = target.inputs.findIndex((input) => input.name === name);
      if (slot < 0) continue;
      const origin = graph.node(value[0]);
      if (origin.outputs.length <= value[1]) {
        // An unknown type: give it enough outputs for the links that leave it.
        const extra = Array.from({ length: value[1] + 1 - origin.outputs.length }, () => ({ name: "*", type: "*", links: [] }));
        graph.updateNode(origin.jsonId, { outputs: [...origin.outputs, ...extra] });
      }
      graph.connect(origin.jsonId, value[1], target.jsonId, slot);
    }
  }
  return graph.serialize();
}
