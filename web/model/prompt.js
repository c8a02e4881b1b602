/**
 * UI workflow → API prompt (comfy-compat §4.5, the frontend's graphToPrompt), without DOM.
 *
 * - virtual nodes (Reroute, PrimitiveNode, Note, ...) and muted (mode 2) or bypassed (mode 4)
 *   nodes are left out;
 * - widget values go inline under the input's name (arrays wrapped as `{__value__}`), except
 *   widgets that do not serialize (control_after_generate, the upload button);
 * - links resolve upstream through Reroutes and through bypassed nodes (same slot index if
 *   compatible, else the first input of exactly the wanted type, else the first compatible);
 * - a PrimitiveNode's value replaces the widget input it feeds;
 * - an input that still points at a node missing from the prompt (muted) is dropped.
 */
import { VIRTUAL_TYPES, typesCompatible } from "./nodedefs.js";
import { valuesForWidgets, widgetsForDef } from "./widgets.js";
import { readWorkflow } from "./workflow.js";

const MUTED = 2;
const BYPASSED = 4;

function indexWorkflow(workflow) {
  const records = readWorkflow(workflow);
  const nodes = new Map();
  const links = new Map();
  for (const record of records) {
    if (record.typeName === "node") nodes.set(String(record.jsonId), record);
    if (record.typeName === "link") links.set(String(record.jsonId), record);
  }
  return { nodes, links };
}

const wrapArray = (value) => (Array.isArray(value) ? { __value__: value } : value);

/** Which input of a bypassed node stands in for its output `slot` of type `wanted`. */
export function bypassInputFor(node, slot, wanted) {
  const inputs = node.inputs ?? [];
  if (!wanted || wanted === "*") return inputs[slot] ? slot : inputs.length ? 0 : -1;
  if (inputs[slot] && typesCompatible(inputs[slot].type, wanted)) return slot;
  const exact = inputs.findIndex((input) => input.type === wanted);
  if (exact >= 0) return exact;
  return inputs.findIndex((input) => typesCompatible(input.type, wanted));
}

/**
 * Follow a link upstream to the node that really produces the value.
 * @returns {{node, slot} | null} null when the chain ends unconnected
 */
function resolveSource(linkId, graph, seen = new Set()) {
  const link = graph.links.get(String(linkId));
  if (!link || seen.has(String(linkId))) return null;
  seen.add(String(linkId));
  const origin = graph.nodes.get(String(link.origin_id));
  if (!origin) return null;
  if (origin.type === "Reroute") {
    const input = origin.inputs?.[0];
    return input?.link == null ? null : resolveSource(input.link, graph, seen);
  }
  if (origin.mode === BYPASSED) {
    const wanted = origin.outputs?.[link.origin_slot]?.type ?? link.type;
    const index = bypassInputFor(origin, link.origin_slot, wanted);
    const input = origin.inputs?.[index];
    return input?.link == null ? null : resolveSource(input.link, graph, seen);
  }
  return { node: origin, slot: link.origin_slot };
}

/** The value of a PrimitiveNode, or `undefined` when it has none yet. */
function primitiveValue(node) {
  const values = Array.isArray(node.widgets_values) ? node.widgets_values : [];
  return values.length ? values[0] : undefined;
}

/**
 * The API prompt of `workflow`.
 * @param {object} workflow UI workflow (0.4 or 1)
 * @param {Map<string, object>} defs parsed node definitions (see nodedefs.js)
 * @returns {{prompt: object, missingTypes: string[]}}
 */
export function workflowToPrompt(workflow, defs) {
  const graph = indexWorkflow(workflow);
  const prompt = {};
  const missingTypes = new Set();
  for (const node of graph.nodes.values()) {
    if (VIRTUAL_TYPES.has(node.type) || node.mode === MUTED || node.mode === BYPASSED) continue;
    const def = defs.get(node.type);
    if (!def) missingTypes.add(node.type);
    const inputs = {};
    if (def) {
      const widgets = widgetsForDef(def);
      const values = valuesForWidgets(widgets, node.widgets_values);
      widgets.forEach((widget, index) => {
        if (widget.serialize) inputs[widget.name] = wrapArray(values[index]);
      });
    }
    for (const input of node.inputs ?? []) {
      if (input.link == null) continue;
      const source = resolveSource(input.link, graph);
      if (!source) continue;
      if (source.node.type === "PrimitiveNode") {
        const value = primitiveValue(source.node);
        if (value !== undefined) inputs[input.name] = wrapArray(value);
        continue;
      }
      if (VIRTUAL_TYPES.has(source.node.type)) continue;
      inputs[input.name] = [String(source.node.jsonId), source.slot];
    }
    const entry = { inputs, class_type: node.type };
    entry._meta = { title: node.title ?? def?.displayName ?? node.type };
    prompt[String(node.jsonId)] = entry;
  }
  for (const entry of Object.values(prompt)) {
    for (const [name, value] of Object.entries(entry.inputs)) {
      if (Array.isArray(value) && value.length === 2 && typeof value[0] === "string" && !(value[0] in prompt)) delete entry.inputs[name];
    }
  }
  return { prompt, missingTypes: [...missingTypes] };
}

/** Keep only `targets` and their upstream nodes (partial execution, §4.5 step 5). */
export function restrictToTargets(prompt, targets) {
  const keep = new Set();
  const visit = (id) => {
    if (keep.has(id) || !(id in prompt)) return;
    keep.add(id);
    for (const value of Object.values(prompt[id].inputs)) if (Array.isArray(value) && value.length === 2) visit(String(value[0]));
  };
  targets.map(String).forEach(visit);
  return Object.fromEntries(Object.entries(prompt).filter(([id]) => keep.has(id)));
}
