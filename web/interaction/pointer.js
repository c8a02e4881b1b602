/**
 * Pointer input on the canvas turned into graph commands: pan (drag on empty space, with
 * Space held, or with the middle button), wheel zoom to the cursor, pinch zoom (trackpad
 * pinches arrive as Ctrl+wheel; two touch pointers), select / shift-ctrl
 * toggle / box select (Ctrl or Shift drag on empty space), moving a selection as one undo
 * step (pinned nodes stay put), resizing, collapsing, link dragging (incompatible targets dimmed by the renderer;
 * dropping on empty canvas opens a type-filtered search), groups, widget clicks, native
 * reroutes (Alt+click on a link adds one; drag to move) and opening subgraph instances (their
 * title's button or a double-click on the title).
 */
import { rectContains, rectsOverlap } from "../view/camera.js";
import { nodeBounds } from "../view/layout.js";
import { isPinned } from "../model/graph.js";
import { typesCompatible } from "../model/nodedefs.js";
import { addReroute, moveReroutes } from "../model/reroutes.js";
import { hitTest, linkNear } from "./hittest.js";
import { widgetPointerDown } from "./widgets.js";

const CLICK_SLOP = 4;
const WHEEL_ZOOM_RATE = 0.0015;
const WHEEL_LINE_ZOOM_RATE = 0.05;
const PINCH_ZOOM_RATE = 0.01;
const PINCH_MAX_STEP = 0.05;
const GROUPED_DRAGS = ["move", "resize", "group-move", "group-resize"];
const LEVEL_CHANGE_GRACE_MS = 500;

export class PointerController {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {object} app gives `editor` (active tab), `ui` (search, menus, editors) and `markDirty()`
   */
  constructor(canvas, app) {
    this.canvas = canvas;
    this.app = app;
    this.drag = null;
    this.spaceHeld = false;
    this.lastGraphPoint = [0, 0];
    this.touches = new Map();
    this.levelChangedAt = -Infinity;
    canvas.addEventListener("pointerdown", (event) => this.onDown(event));
    canvas.addEventListener("pointermove", (event) => this.onMove(event));
    canvas.addEventListener("pointerup", (event) => this.onUp(event));
    canvas.addEventListener("pointercancel", (event) => this.onUp(event));
    canvas.addEventListener("wheel", (event) => this.onWheel(event), { passive: false });
    canvas.addEventListener("dblclick", (event) => this.onDoubleClick(event));
    canvas.addEventListener("contextmenu", (event) => this.onContextMenu(event));
    window.addEventListener("keydown", (event) => {
      if (event.code === "Space" && !isTyping(event)) this.spaceHeld = true;
    });
    window.addEventListener("keyup", (event) => {
      if (event.code === "Space") this.spaceHeld = false;
    });
  }

  get editor() {
    return this.app.editor;
  }

  screenPoint(event) {
    const rect = this.canvas.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  }

  graphPoint(event) {
    return this.editor.camera.screenToGraph(this.screenPoint(event));
  }

  onDown(event) {
    this.app.ui.closeTransient();
    const screen = this.screenPoint(event);
    const point = this.graphPoint(event);
    this.canvas.setPointerCapture(event.pointerId);
    if (event.pointerType === "touch") {
      this.touches.set(event.pointerId, screen);
      if (this.touches.size === 2) {
        this.startPinch();
        return;
      }
    }
    if (event.button === 1 || (event.button === 0 && this.spaceHeld)) {
      this.drag = { kind: "pan", last: screen };
      return;
    }
    if (event.button !== 0) return;
    const editor = this.editor;
    const hit = hitTest(editor, point);
    const additive = event.shiftKey || event.ctrlKey || event.metaKey;
    const linkHit = hit.kind === "empty" && event.altKey ? linkNear(editor, point) : null;
    if (linkHit) {
      editor.graph.history.begin();
      const rerouteId = addReroute(editor.graph, linkHit.link.jsonId, linkHit.segment, point);
      this.selectRecord(`reroute:${rerouteId}`, false);
      this.drag = { kind: "move", last: point, moved: false };
    } else if (hit.kind === "reroute") {
      this.selectRecord(hit.reroute.id, additive);
      editor.graph.history.begin();
      this.drag = { kind: "move", last: point, moved: false };
    } else if (hit.kind === "open-subgraph") {
      if (this.app.openSubgraph(hit.node.jsonId)) this.levelChangedAt = performance.now();
    } else if (hit.kind === "empty") {
      if (additive) this.drag = { kind: "box", start: point, additive: true };
      else {
        editor.selection.clear();
        this.drag = { kind: "pan", last: screen, start: screen };
      }
    } else if (hit.kind === "output") {
      this.drag = { kind: "link", nodeId: hit.node.jsonId };
      editor.interaction.dragLink = { nodeId: hit.node.jsonId, slot: hit.slot, fromInput: false, type: hit.node.outputs[hit.slot].type, to: point };
    } else if (hit.kind === "input") {
      this.startInputDrag(hit, point, event);
    } else if (hit.kind === "widget") {
      this.selectNode(hit.node, additive);
      this.drag = widgetPointerDown(this.app, hit, point, screen);
    } else if (hit.kind === "collapse") {
      editor.graph.toggleCollapsed([hit.node.jsonId]);
    } else if (hit.kind === "resize" && isPinned(hit.node)) {
      this.selectNode(hit.node, additive);
    } else if (hit.kind === "resize") {
      editor.graph.history.begin();
      this.drag = { kind: "resize", node: hit.node, start: point, size: [hit.layout.w, hit.layout.h] };
    } else if (hit.kind === "group-title" || hit.kind === "group-resize") {
      this.startGroupDrag(hit, point, additive);
    } else {
      this.selectNode(hit.node, additive);
      editor.graph.history.begin();
      this.drag = { kind: "move", last: point, moved: false };
    }
    this.app.markDirty();
  }

  startInputDrag(hit, point, event) {
    const editor = this.editor;
    const link = editor.graph.linkInto(hit.node.jsonId, hit.slot);
    if (link && !event.altKey) {
      // Pulling a connected input detaches the link and carries it from its origin.
      editor.graph.history.begin();
      editor.graph.removeLink(link.jsonId);
      const origin = editor.graph.node(link.origin_id);
      this.drag = { kind: "link", grouped: true };
      editor.interaction.dragLink = { nodeId: origin.jsonId, slot: link.origin_slot, fromInput: false, type: origin.outputs[link.origin_slot].type, to: point };
    } else {
      this.drag = { kind: "link" };
      editor.interaction.dragLink = { nodeId: hit.node.jsonId, slot: hit.slot, fromInput: true, type: hit.node.inputs[hit.slot].type, to: point };
    }
  }

  startGroupDrag(hit, point, additive) {
    const editor = this.editor;
    const { group } = hit;
    if (!additive) editor.selection.clear();
    editor.selection.add(group.id);
    editor.graph.history.begin();
    if (hit.kind === "group-resize") {
      this.drag = { kind: "group-resize", groupId: group.id, start: point, bounding: [...group.bounding] };
      return;
    }
    const inner = editor.graph.nodes().filter((node) => !isPinned(node) && rectContains(group.bounding, nodeBounds(node))).map((node) => node.jsonId);
    this.drag = { kind: "group-move", groupId: group.id, nodeIds: inner, last: point };
  }

  /** A second touch pointer turns whatever the first one started into a pinch. */
  startPinch() {
    const editor = this.editor;
    const drag = this.drag;
    if (drag && (GROUPED_DRAGS.includes(drag.kind) || drag.grouped || drag.kind === "widget")) editor.graph.history.end();
    editor.interaction.dragLink = null;
    editor.interaction.activeWidget = null;
    editor.interaction.box = null;
    this.drag = { kind: "pinch", ...this.pinchGeometry() };
  }

  pinchGeometry() {
    const [a, b] = [...this.touches.values()];
    return { distance: Math.hypot(b[0] - a[0], b[1] - a[1]), middle: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2] };
  }

  movePinch(drag) {
    const { distance, middle } = this.pinchGeometry();
    const camera = this.editor.camera;
    camera.panBy(middle[0] - drag.middle[0], middle[1] - drag.middle[1]);
    if (drag.distance > 0 && distance > 0) camera.zoomAt(distance / drag.distance, middle);
    Object.assign(drag, { distance, middle });
  }

  selectNode(node, additive) {
    this.selectRecord(node.id, additive);
  }

  /** Select a record by store id (a node, a reroute): toggled when additive, else alone unless already selected. */
  selectRecord(recordId, additive) {
    const { selection } = this.editor;
    if (additive) {
      if (selection.has(recordId)) selection.delete(recordId);
      else selection.add(recordId);
    } else if (!selection.has(recordId)) {
      selection.clear();
      selection.add(recordId);
    }
  }

  onMove(event) {
    const point = this.graphPoint(event);
    this.lastGraphPoint = point;
    const screen = this.screenPoint(event);
    if (this.touches.has(event.pointerId)) this.touches.set(event.pointerId, screen);
    const drag = this.drag;
    if (!drag) return;
    const editor = this.editor;
    if (drag.kind === "pinch") {
      this.movePinch(drag);
    } else if (drag.kind === "pan") {
      editor.camera.panBy(screen[0] - drag.last[0], screen[1] - drag.last[1]);
      drag.last = screen;
    } else if (drag.kind === "box") {
      editor.interaction.box = normaliseRect(drag.start, point);
    } else if (drag.kind === "move") {
      const ids = selectedNodeIds(editor).filter((id) => !isPinned(editor.graph.node(id)));
      editor.graph.store.transact(() => {
        editor.graph.moveNodes(ids, point[0] - drag.last[0], point[1] - drag.last[1]);
        moveReroutes(editor.graph, selectedRerouteIds(editor), point[0] - drag.last[0], point[1] - drag.last[1]);
      });
      drag.last = point;
      drag.moved = true;
    } else if (drag.kind === "link") {
      editor.interaction.dragLink.to = point;
    } else if (drag.kind === "resize") {
      editor.graph.updateNode(drag.node.jsonId, { size: [Math.max(80, drag.size[0] + point[0] - drag.start[0]), Math.max(30, drag.size[1] + point[1] - drag.start[1])] });
    } else if (drag.kind === "group-move") {
      const dx = point[0] - drag.last[0];
      const dy = point[1] - drag.last[1];
      const group = editor.graph.store.get(drag.groupId);
      editor.graph.updateGroup(drag.groupId, { bounding: [group.bounding[0] + dx, group.bounding[1] + dy, group.bounding[2], group.bounding[3]] });
      editor.graph.moveNodes(drag.nodeIds, dx, dy);
      drag.last = point;
    } else if (drag.kind === "group-resize") {
      const [x, y, w, h] = drag.bounding;
      editor.graph.updateGroup(drag.groupId, { bounding: [x, y, Math.max(100, w + point[0] - drag.start[0]), Math.max(60, h + point[1] - drag.start[1])] });
    } else if (drag.onMove) {
      drag.onMove(point, screen, event);
    }
    this.app.markDirty();
  }

  onUp(event) {
    this.touches.delete(event.pointerId);
    const drag = this.drag;
    this.drag = null;
    if (!drag) return;
    const editor = this.editor;
    const point = this.graphPoint(event);
    if (drag.kind === "box") this.finishBox(drag);
    else if (drag.kind === "link") this.finishLink(event, point, drag);
    else if (GROUPED_DRAGS.includes(drag.kind)) editor.graph.history.end();
    else if (drag.onUp) drag.onUp(point, this.screenPoint(event), event);
    editor.interaction.box = null;
    this.app.markDirty();
    this.app.onViewChanged?.();
  }

  finishBox(drag) {
    const editor = this.editor;
    const box = editor.interaction.box;
    if (!box) return;
    if (!drag.additive) editor.selection.clear();
    for (const node of editor.graph.nodes()) if (rectsOverlap(nodeBounds(node), box)) editor.selection.add(node.id);
    for (const group of editor.graph.groups()) if (rectContains(box, group.bounding)) editor.selection.add(group.id);
    for (const reroute of editor.graph.reroutes()) if (rectContains(box, [reroute.pos[0], reroute.pos[1], 0, 0])) editor.selection.add(reroute.id);
  }

  finishLink(event, point, drag) {
    const editor = this.editor;
    const dragLink = editor.interaction.dragLink;
    editor.interaction.dragLink = null;
    const hit = hitTest(editor, point);
    try {
      if (hit.kind !== "empty" && hit.node) {
        this.connectTo(dragLink, hit);
      } else if (hit.kind === "empty") {
        const screen = this.screenPoint(event);
        this.app.ui.openSearch({
          screen, graphPos: point,
          filter: dragLink.fromInput ? { outputType: dragLink.type } : { inputType: dragLink.type },
          onPick: (nodeId) => this.connectNew(dragLink, nodeId),
        });
      }
    } finally {
      if (drag.grouped) editor.graph.history.end();
    }
  }

  /** Connect the dragged link to the slot (or the first compatible slot) of the node under the pointer. */
  connectTo(dragLink, hit) {
    const { graph } = this.editor;
    const node = hit.node;
    if (String(node.jsonId) === String(dragLink.nodeId)) return;
    if (dragLink.fromInput) {
      const slot = hit.kind === "output" ? hit.slot : node.outputs.findIndex((output) => typesCompatible(output.type, dragLink.type));
      if (slot >= 0 && typesCompatible(node.outputs[slot].type, dragLink.type)) graph.connect(node.jsonId, slot, dragLink.nodeId, dragLink.slot);
      return;
    }
    let slot = -1;
    if (hit.kind === "input") slot = hit.slot;
    else if (hit.kind === "widget") slot = graph.ensureWidgetInput(node.jsonId, hit.row.widget.name);
    else slot = node.inputs.findIndex((input) => input.link == null && !input.widget && typesCompatible(dragLink.type, input.type));
    const target = graph.node(node.jsonId);
    if (slot >= 0 && typesCompatible(dragLink.type, target.inputs[slot].type)) graph.connect(dragLink.nodeId, dragLink.slot, node.jsonId, slot);
  }

  /** After the search created `nodeId` for a link dropped on empty canvas, wire it. */
  connectNew(dragLink, nodeId) {
    const { graph } = this.editor;
    const node = graph.node(nodeId);
    if (dragLink.fromInput) {
      const slot = node.outputs.findIndex((output) => typesCompatible(output.type, dragLink.type));
      if (slot >= 0) graph.connect(nodeId, slot, dragLink.nodeId, dragLink.slot);
    } else {
      const slot = node.inputs.findIndex((input) => typesCompatible(dragLink.type, input.type) && (!input.widget || input.type === dragLink.type));
      if (slot >= 0) graph.connect(dragLink.nodeId, dragLink.slot, nodeId, slot);
    }
  }

  onWheel(event) {
    event.preventDefault();
    this.editor.camera.zoomAt(wheelZoomFactor(event), this.screenPoint(event));
    this.app.markDirty();
    this.app.onViewChanged?.();
  }

  onDoubleClick(event) {
    // A double-click whose first click opened a subgraph (its title button) is not one inside it.
    if (performance.now() - this.levelChangedAt < LEVEL_CHANGE_GRACE_MS) return;
    const point = this.graphPoint(event);
    const hit = hitTest(this.editor, point);
    if (hit.kind === "empty") {
      this.app.ui.openSearch({ screen: this.screenPoint(event), graphPos: point, filter: {} });
    } else if ((hit.kind === "title" || hit.kind === "open-subgraph") && hit.node && this.editor.graph.isSubgraphType(hit.node.type)) {
      if (hit.kind === "title") this.app.openSubgraph(hit.node.jsonId);
    } else if (hit.kind === "title" && hit.node) {
      this.app.ui.renameNode(hit.node, this.screenPoint(event));
    } else if (hit.kind === "group-title") {
      this.app.ui.renameGroup(hit.group, this.screenPoint(event));
    }
  }

  onContextMenu(event) {
    event.preventDefault();
    const point = this.graphPoint(event);
    let hit = hitTest(this.editor, point);
    if (hit.node && !this.editor.selection.has(hit.node.id)) this.selectNode(hit.node, false);
    if (hit.kind === "reroute") this.selectRecord(hit.reroute.id, false);
    if (hit.kind === "empty") {
      const near = linkNear(this.editor, point);
      if (near) hit = { kind: "link", link: near.link, segment: near.segment };
    }
    this.app.ui.contextMenu(hit, this.screenPoint(event), point);
    this.app.markDirty();
  }
}

/**
 * Zoom factor of one wheel event. A trackpad pinch arrives as a Ctrl+wheel with small
 * deltas; it zooms gently, at most `PINCH_MAX_STEP` (in log scale) per event.
 */
export function wheelZoomFactor({ deltaY, deltaMode, ctrlKey }) {
  if (ctrlKey) return Math.exp(Math.max(-PINCH_MAX_STEP, Math.min(PINCH_MAX_STEP, -deltaY * PINCH_ZOOM_RATE)));
  return Math.exp(-deltaY * (deltaMode === 1 ? WHEEL_LINE_ZOOM_RATE : WHEEL_ZOOM_RATE));
}

/** Ids (the reroutes' own `id`) of the selected native reroutes. */
export function selectedRerouteIds(editor) {
  return [...editor.selection].filter((id) => id.startsWith("reroute:")).map((id) => editor.graph.store.get(id)?.jsonId).filter((id) => id !== undefined);
}

export function selectedNodeIds(editor) {
  return [...editor.selection].filter((id) => id.startsWith("node:")).map((id) => editor.graph.store.get(id)?.jsonId).filter((id) => id !== undefined);
}

function normaliseRect(a, b) {
  return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.abs(a[0] - b[0]), Math.abs(a[1] - b[1])];
}

export function isTyping(event) {
  const target = event.target;
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}
