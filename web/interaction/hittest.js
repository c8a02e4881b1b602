/**
 * What lies under a graph point: a native reroute, a slot, a widget, a node's title, its
 * "open subgraph" button or body, its resize corner, a group's title bar, or nothing; and
 * which link passes near a point. Uses the same layout as the renderer.
 */
import { layoutNode, nodeBounds, SLOT_H, SUBGRAPH_BUTTON_W, TITLE_H } from "../view/layout.js";
import { linkAt, rerouteAt } from "../view/link_geometry.js";

const SLOT_HIT = 10;

const inside = ([px, py], x, y, w, h) => px >= x && px <= x + w && py >= y && py <= y + h;

/** `node -> layout` for the shown level of `editor`, as the renderer lays nodes out. */
export function layoutFor(editor) {
  return (node) => layoutNode(editor.graph, node, Boolean(editor.viewStatus.get(String(node.jsonId))?.images?.length));
}

/** The link (and its segment) passing within a few screen pixels of graph point `point`. */
export function linkNear(editor, point) {
  return linkAt(editor.graph, point, layoutFor(editor), 6 / Math.min(1, editor.camera.scale));
}

export function hitTest(editor, point) {
  const { graph } = editor;
  const reroute = rerouteAt(graph, point);
  if (reroute) return { kind: "reroute", reroute };
  const nodes = graph.nodes();
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    const [bx, by, bw, bh] = nodeBounds(node);
    if (!inside(point, bx - SLOT_HIT, by - 4, bw + 2 * SLOT_HIT, bh + 8 + (node.flags?.collapsed ? 0 : 400))) continue;
    const layout = layoutNode(graph, node, Boolean(editor.viewStatus.get(String(node.jsonId))?.images?.length));
    const hit = hitNode(node, layout, point, graph.isSubgraphType(node.type));
    if (hit) return { ...hit, node, layout };
  }
  for (const group of [...graph.groups()].reverse()) {
    const [x, y, w, h] = group.bounding;
    const titleH = (group.font_size ?? 24) + 10;
    if (inside(point, x + w - 12, y + h - 12, 14, 14)) return { kind: "group-resize", group };
    if (inside(point, x, y, w, titleH)) return { kind: "group-title", group };
  }
  return { kind: "empty" };
}

function hitNode(node, layout, point, isSubgraph) {
  const { x, y, w, h } = layout;
  const top = y - TITLE_H;
  for (const slot of layout.outputs) {
    if (Math.abs(point[0] - slot.x) <= SLOT_HIT && Math.abs(point[1] - slot.y) <= SLOT_H / 2) return { kind: "output", slot: slot.index };
  }
  for (const slot of layout.inputs) {
    const reach = slot.widgetIndex === undefined ? SLOT_HIT : 8;
    if (Math.abs(point[0] - slot.x) <= reach && Math.abs(point[1] - slot.y) <= SLOT_H / 2) return { kind: "input", slot: slot.index };
  }
  if (layout.reroute) return inside(point, x, y, w, h) ? { kind: "body" } : null;
  const titleKind = () => (point[0] < x + 22 ? "collapse" : isSubgraph && point[0] > x + w - SUBGRAPH_BUTTON_W ? "open-subgraph" : "title");
  if (layout.collapsed) return inside(point, x, top, w, TITLE_H) ? { kind: titleKind() } : null;
  if (!inside(point, x, top, w, h + TITLE_H)) return null;
  if (point[1] < y) return { kind: titleKind() };
  if (inside(point, x + w - 12, y + h - 12, 12, 12)) return { kind: "resize" };
  for (const row of layout.widgets) {
    if (inside(point, row.x, row.y, row.w, row.h)) return { kind: "widget", row };
  }
  if (layout.image && inside(point, layout.image.x, layout.image.y, layout.image.w, layout.image.h)) return { kind: "image" };
  return { kind: "body" };
}
