/**
 * Geometry of a node on the canvas, in graph units: where its title, slots, widgets and image
 * area are. Shared by the renderer (to draw) and the pointer handling (to hit-test), so both
 * always agree. A node's `pos` is the top-left of its body; the title bar sits above it
 * (litegraph's convention, which saved `pos`/`size` values assume).
 */

export const TITLE_H = 26;
export const SLOT_H = 20;
export const WIDGET_H = 22;
export const WIDGET_GAP = 4;
export const MULTILINE_H = 72;
export const PAD = 6;
export const MIN_W = 240;
export const IMAGE_H = 180;
export const COLLAPSED_MIN_W = 90;
export const SLOT_RADIUS = 5;
/** Width of the "open subgraph" button at the right end of a subgraph instance's title bar. */
export const SUBGRAPH_BUTTON_W = 24;
/** A legacy Reroute node is a small pill without a title bar, as in litegraph. */
export const REROUTE_SIZE = [75, 26];
const CHAR_W = 7;

/** Row height of a widget; an extension's widget may ask for its own (`computeSize(width) -> [w, h]`). */
function widgetHeight(widget) {
  if (widget.kind === "STRING" && widget.options.multiline) return MULTILINE_H;
  if (widget.kind === "CUSTOM" && typeof widget.custom?.computeSize === "function") {
    try {
      const height = Number(widget.custom.computeSize(MIN_W)?.[1]);
      if (height > 0) return height;
    } catch {
      /* a failing extension widget keeps the standard height */
    }
  }
  return WIDGET_H;
}

const boundsCache = new WeakMap();

/**
 * Bounding box `[x, y, w, h]` including the title bar, from stored pos/size only (for culling).
 * Records are immutable, so the box is cached per record.
 */
export function nodeBounds(node) {
  let bounds = boundsCache.get(node);
  if (!bounds) {
    bounds = computeBounds(node);
    boundsCache.set(node, bounds);
  }
  return bounds;
}

function computeBounds(node) {
  if (node.type === "Reroute") return [node.pos[0], node.pos[1], ...REROUTE_SIZE];
  if (node.flags?.collapsed) {
    const w = collapsedWidth(node);
    return [node.pos[0], node.pos[1] - TITLE_H, w, TITLE_H];
  }
  return [node.pos[0], node.pos[1] - TITLE_H, Math.max(node.size?.[0] ?? MIN_W, 60), Math.max(node.size?.[1] ?? 40, 10) + TITLE_H];
}

/** The title shown on a node: its own, its type's display name, its subgraph's name, or its type. */
export function titleOf(graph, node) {
  return node.title ?? graph.def(node)?.displayName ?? graph.subgraphDefinition?.(node.type)?.name ?? node.type;
}

function collapsedWidth(node, title = node.title ?? node.type) {
  return Math.max(COLLAPSED_MIN_W, String(title).length * CHAR_W + 40);
}

/** The smallest body size that shows every slot and widget of `node`. */
export function minimumSize(graph, node, hasImages = false) {
  const widgets = graph.widgets(node);
  const rows = slotRows(graph, node, widgets);
  let height = rows.length * SLOT_H + PAD;
  for (const widget of widgets) height += widgetHeight(widget) + WIDGET_GAP;
  if (!graph.def(node) && Array.isArray(node.widgets_values)) height += node.widgets_values.length * SLOT_H;
  if (hasImages) height += IMAGE_H;
  const title = titleOf(graph, node);
  const longestLabel = Math.max(0, ...rows.map((row) => ((row.input?.name?.length ?? 0) + (row.output?.name?.length ?? 0)) * CHAR_W + 40));
  return [Math.max(MIN_W, title.length * CHAR_W + 50, longestLabel), height + PAD];
}

/** Pairs of (input, output) per slot row; widget inputs live on their widget's row instead. */
function slotRows(graph, node, widgets) {
  const widgetNames = new Set(widgets.map((widget) => widget.name));
  const inputs = node.inputs.map((input, index) => ({ ...input, index })).filter((input) => !(input.widget && widgetNames.has(input.widget.name)));
  const outputs = node.outputs.map((output, index) => ({ ...output, index }));
  const rows = [];
  for (let i = 0; i < Math.max(inputs.length, outputs.length); i++) rows.push({ input: inputs[i], output: outputs[i] });
  return rows;
}

/**
 * Full layout of a node.
 * @returns {{x, y, w, h, collapsed, title, inputs: object[], outputs: object[], widgets: object[], image: object|null}}
 *   slots `{index, x, y, name, type}`; widgets `{index, widget, x, y, w, h}`; image `{x, y, w, h}`
 */
export function layoutNode(graph, node, hasImages = false) {
  const title = titleOf(graph, node);
  const [x, y] = node.pos;
  if (node.type === "Reroute") {
    const [w, h] = REROUTE_SIZE;
    return {
      x, y, w, h, collapsed: false, reroute: true, title,
      inputs: node.inputs.slice(0, 1).map((input) => ({ index: 0, x, y: y + h / 2, name: "", type: input.type, widgetIndex: -1 })),
      outputs: node.outputs.slice(0, 1).map((output) => ({ index: 0, x: x + w, y: y + h / 2, name: "", type: output.type })),
      widgets: [], image: null, rawValues: [], rawTop: y,
    };
  }
  if (node.flags?.collapsed) {
    const w = collapsedWidth(node, title);
    const cy = y - TITLE_H / 2;
    return {
      x, y, w, h: 0, collapsed: true, title,
      inputs: node.inputs.map((input, index) => ({ index, x, y: cy, name: input.name, type: input.type })),
      outputs: node.outputs.map((output, index) => ({ index, x: x + w, y: cy, name: output.name, type: output.type })),
      widgets: [], image: null,
    };
  }
  const widgets = graph.widgets(node);
  const [minW, minH] = minimumSize(graph, node, hasImages);
  const w = Math.max(node.size?.[0] ?? minW, minW);
  const h = Math.max(node.size?.[1] ?? minH, minH);
  const rows = slotRows(graph, node, widgets);
  const inputs = [];
  const outputs = [];
  rows.forEach((row, rowIndex) => {
    const cy = y + rowIndex * SLOT_H + SLOT_H / 2 + 2;
    if (row.input) inputs.push({ index: row.input.index, x, y: cy, name: row.input.label ?? row.input.name, type: row.input.type });
    if (row.output) outputs.push({ index: row.output.index, x: x + w, y: cy, name: row.output.label ?? row.output.name, type: row.output.type });
  });
  let cursor = y + rows.length * SLOT_H + PAD;
  const widgetRows = widgets.map((widget, index) => {
    const height = widgetHeight(widget);
    const row = { index, widget, x: x + 10, y: cursor, w: w - 20, h: height };
    cursor += height + WIDGET_GAP;
    const slotIndex = node.inputs.findIndex((input) => input.widget?.name === widget.name);
    if (slotIndex >= 0) inputs.push({ index: slotIndex, x, y: row.y + WIDGET_H / 2, name: widget.name, type: node.inputs[slotIndex].type, widgetIndex: index });
    return row;
  });
  const rawValues = !graph.def(node) && Array.isArray(node.widgets_values) ? node.widgets_values : [];
  const rawTop = cursor;
  cursor += rawValues.length * SLOT_H;
  const imageTop = cursor + 2;
  const image = hasImages ? { x: x + 6, y: imageTop, w: w - 12, h: Math.max(40, y + h - imageTop - 6) } : null;
  return { x, y, w, h, collapsed: false, title, inputs, outputs, widgets: widgetRows, image, rawValues, rawTop };
}

/**
 * Where a slot's dot roughly is, from pos/size only: for drawing links when zoomed out,
 * where the exact layout is not worth computing.
 */
export function approximateSlotPosition(node, isInput, index) {
  const [x, y, w] = nodeBounds(node);
  if (node.flags?.collapsed) return [isInput ? x : x + w, y + TITLE_H / 2];
  return [isInput ? x : x + w, y + TITLE_H + index * SLOT_H + SLOT_H / 2 + 2];
}

/** Where the dot of input/output `index` is, in graph units. */
export function slotPosition(layout, isInput, index) {
  const slot = (isInput ? layout.inputs : layout.outputs).find((candidate) => candidate.index === index);
  if (slot) return [slot.x, slot.y];
  return isInput ? [layout.x, layout.y + SLOT_H / 2] : [layout.x + layout.w, layout.y + SLOT_H / 2];
}
