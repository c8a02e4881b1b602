/**
 * Node definitions from `/object_info` (comfy-compat §1.7) in the shape the editor uses:
 * ordered input slots, widgets and outputs. Inputs are walked in `input_order` (required,
 * then optional), as the frontend does when it creates widgets (§4.4).
 */

export const WIDGET_TYPES = new Set(["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"]);

/** Node types that exist only in the editor and never reach the API prompt (§4.5 step 1). */
export const VIRTUAL_TYPES = new Set(["PrimitiveNode", "Reroute", "Note", "MarkdownNote"]);

/** Definitions of the editor's own virtual nodes, shaped like `/object_info` entries. */
export const VIRTUAL_DEFS = {
  Reroute: {
    name: "Reroute", display_name: "Reroute", category: "utils", output_node: false, description: "Passes one link through.",
    input: { required: { "": ["*", {}] } }, input_order: { required: [""] }, output: ["*"], output_name: [""],
  },
  Note: {
    name: "Note", display_name: "Note", category: "utils", output_node: false, description: "A text note; never executed.",
    input: { required: { text: ["STRING", { multiline: true, default: "" }] } }, input_order: { required: ["text"] },
    output: [], output_name: [],
  },
  PrimitiveNode: {
    name: "PrimitiveNode", display_name: "Primitive", category: "utils", output_node: false,
    description: "Drives widget inputs of other nodes with one value.",
    input: { required: {} }, input_order: { required: [] }, output: ["*"], output_name: ["connect to widget input"],
  },
};

/** `[type, options]` of one input spec, with combos normalised to type "COMBO" and `options.values`. */
export function normaliseInputSpec(spec) {
  const [rawType, rawOptions] = Array.isArray(spec) ? spec : [spec, {}];
  const options = { ...(rawOptions ?? {}) };
  if (Array.isArray(rawType)) return ["COMBO", { ...options, values: rawType }];
  if (rawType === "COMBO") return ["COMBO", { ...options, values: options.options ?? options.values ?? [] }];
  return [String(rawType), options];
}

function orderedInputNames(info, group) {
  const specs = info.input?.[group] ?? {};
  const order = info.input_order?.[group] ?? Object.keys(specs);
  return order.filter((name) => name in specs);
}

/**
 * One definition: `{name, displayName, category, description, outputNode, inputs, outputs}`;
 * each input `{name, type, options, optional, hasWidget, customWidget?}`.
 * @param {object} info one `/object_info` entry
 * @param {{customWidget?: (nodeName: string, inputName: string, spec: Array) => object|null}} options
 *   `customWidget` gives the widget an extension made for an input of a type it registered
 *   (`getCustomWidgets`, comfy-compat §7.3), or null
 */
export function parseNodeDef(info, { customWidget } = {}) {
  const inputs = [];
  for (const group of ["required", "optional"]) {
    for (const name of orderedInputNames(info, group)) {
      const spec = info.input[group][name];
      const [type, options] = normaliseInputSpec(spec);
      const custom = !WIDGET_TYPES.has(type) && !options.forceInput && customWidget ? customWidget(info.name, name, spec) : null;
      const hasWidget = (WIDGET_TYPES.has(type) || Boolean(custom)) && !options.forceInput;
      const input = { name, type, options, optional: group === "optional", hasWidget };
      if (custom) input.customWidget = custom;
      inputs.push(input);
    }
  }
  const outputTypes = info.output ?? [];
  const outputs = outputTypes.map((type, index) => ({
    name: info.output_name?.[index] ?? String(type),
    type: Array.isArray(type) ? "COMBO" : String(type),
    isList: Boolean(info.output_is_list?.[index]),
    tooltip: info.output_tooltips?.[index],
  }));
  return {
    name: info.name,
    displayName: info.display_name || info.name,
    category: info.category || "sd",
    description: info.description || "",
    outputNode: Boolean(info.output_node),
    pythonModule: info.python_module || "",
    deprecated: Boolean(info.deprecated),
    inputs,
    outputs,
  };
}

/** Parse a whole `/object_info` answer, adding the editor's virtual nodes (options: see `parseNodeDef`). */
export function parseObjectInfo(objectInfo, options = {}) {
  const defs = new Map();
  for (const [name, info] of Object.entries({ ...VIRTUAL_DEFS, ...objectInfo })) {
    defs.set(name, parseNodeDef({ ...info, name }, options));
  }
  return defs;
}

/**
 * Whether an output of type `from` may feed an input of type `to` (litegraph's rule: equal,
 * a wildcard `*` or empty on either side, or comma-separated alternatives that share a type).
 */
export function typesCompatible(from, to) {
  const a = String(from ?? "").toUpperCase();
  const b = String(to ?? "").toUpperCase();
  if (!a || !b || a === "*" || b === "*" || a === b) return true;
  const left = a.split(",");
  const right = new Set(b.split(","));
  return left.some((type) => right.has(type));
}
