/**
 * Draws one editor tab on a `<canvas>` (litegraph's rendering ideas, written for Kiln):
 * redraw only when marked dirty, a cached grid tile as the background layer, nodes and links
 * outside the viewport culled, and less detail (no labels, no widgets, straight links) when
 * zoomed out. Draws only: it never changes the graph.
 */
import { rectsOverlap } from "./camera.js";
import { approximateSlotPosition, layoutNode, nodeBounds, slotPosition, SLOT_RADIUS, TITLE_H } from "./layout.js";
import { typeColor } from "./theme.js";
import { fitText, wrapText } from "./text.js";
import { drawWidget } from "./widgets_draw.js";
import { isPinned } from "../model/graph.js";
import { typesCompatible } from "../model/nodedefs.js";

const DETAIL_SCALE = 0.35;
const LOW_SCALE = 0.2;
const PIN_MARKER_W = 10;
const GRID = 20;

export class Renderer {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {() => object} getScene returns `{graph, camera, selection, status, interaction, theme}`
   */
  constructor(canvas, getScene) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.getScene = getScene;
    this.dirty = true;
    this.frameTimes = []; // the last 600 draw durations (ms)
    this.drawCount = 0; // draws since start: frameTimes' length stops growing once it is full
    this.onAfterDraw = null;
    this.gridTile = null;
    this.gridTheme = null;
    this.running = false;
  }

  markDirty() {
    this.dirty = true;
  }

  start() {
    this.running = true;
    const loop = () => {
      if (!this.running) return;
      if (this.dirty) this.draw();
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }

  stop() {
    this.running = false;
  }

  /** Size the backing store to the element's CSS size × devicePixelRatio. */
  resize() {
    const ratio = window.devicePixelRatio || 1;
    const { clientWidth, clientHeight } = this.canvas;
    if (this.canvas.width !== Math.round(clientWidth * ratio) || this.canvas.height !== Math.round(clientHeight * ratio)) {
      this.canvas.width = Math.round(clientWidth * ratio);
      this.canvas.height = Math.round(clientHeight * ratio);
    }
    this.markDirty();
  }

  draw() {
    const started = performance.now();
    this.dirty = false;
    const scene = this.getScene();
    const { ctx, canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.width / ratio;
    const height = canvas.height / ratio;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    this.drawBackground(scene, width, height);
    if (!scene.graph) return;
    const { camera } = scene;
    ctx.save();
    ctx.scale(camera.scale, camera.scale);
    ctx.translate(camera.offset[0], camera.offset[1]);
    const view = camera.visibleRect(width, height);
    const visibleNodes = scene.graph.nodes().filter((node) => rectsOverlap(nodeBounds(node), view));
    const layouts = new Map();
    const layoutOf = (node) => {
      let layout = layouts.get(node.id);
      if (!layout) {
        layout = layoutNode(scene.graph, node, Boolean(scene.status.get(String(node.jsonId))?.images?.length));
        layouts.set(node.id, layout);
      }
      return layout;
    };
    for (const group of scene.graph.groups()) {
      if (rectsOverlap(group.bounding, view)) this.drawGroup(scene, group);
    }
    this.drawLinks(scene, view, layoutOf);
    this.drawNativeReroutes(scene);
    if (camera.scale < LOW_SCALE) this.drawNodeBoxes(scene, visibleNodes);
    else for (const node of visibleNodes) this.drawNode(scene, node, layoutOf(node));
    this.drawInteraction(scene, layoutOf);
    ctx.restore();
    this.frameTimes.push(performance.now() - started);
    if (this.frameTimes.length > 600) this.frameTimes.shift();
    this.drawCount += 1;
    this.onAfterDraw?.(scene, width, height);
  }

  drawBackground(scene, width, height) {
    const { ctx } = this;
    const { theme, camera } = scene;
    ctx.fillStyle = theme.background;
    ctx.fillRect(0, 0, width, height);
    if (camera.scale < LOW_SCALE) return;
    if (!this.gridTile || this.gridTheme !== theme.name) {
      this.gridTile = document.createElement("canvas");
      this.gridTile.width = this.gridTile.height = GRID * 5;
      const tile = this.gridTile.getContext("2d");
      tile.strokeStyle = theme.grid;
      tile.lineWidth = 1;
      for (let i = 0; i <= 5; i++) {
        tile.strokeStyle = i === 0 ? theme.gridStrong : theme.grid;
        tile.beginPath();
        tile.moveTo(i * GRID + 0.5, 0);
        tile.lineTo(i * GRID + 0.5, GRID * 5);
        tile.moveTo(0, i * GRID + 0.5);
        tile.lineTo(GRID * 5, i * GRID + 0.5);
        tile.stroke();
      }
      this.gridTheme = theme.name;
    }
    const pattern = ctx.createPattern(this.gridTile, "repeat");
    const matrix = new DOMMatrix().scale(camera.scale).translate(camera.offset[0], camera.offset[1]);
    pattern.setTransform(matrix);
    ctx.fillStyle = pattern;
    ctx.fillRect(0, 0, width, height);
  }

  drawGroup(scene, group) {
    const { ctx } = this;
    const [x, y, w, h] = group.bounding;
    const color = group.color ?? "#3f789e";
    ctx.globalAlpha = 0.25;
    ctx.fillStyle = color;
    ctx.fillRect(x, y, w, h);
    ctx.globalAlpha = 1;
    ctx.strokeStyle = scene.selection.has(group.id) ? scene.theme.selection : color;
    ctx.lineWidth = scene.selection.has(group.id) ? 2 : 1;
    ctx.strokeRect(x, y, w, h);
    const fontSize = group.font_size ?? 24;
    ctx.fillStyle = color;
    ctx.globalAlpha = 0.5;
    ctx.fillRect(x, y, w, fontSize + 10);
    ctx.globalAlpha = 1;
    if (scene.camera.scale >= LOW_SCALE) {
      ctx.fillStyle = scene.theme.groupText;
      ctx.font = `${fontSize}px sans-serif`;
      ctx.textBaseline = "middle";
      ctx.fillText(group.title ?? "Group", x + 8, y + (fontSize + 10) / 2);
    }
  }

  /**
   * Links whose bounding box meets the view. Zoomed in: exact slot positions and curves, one
   * stroke each; zoomed out: approximate ends and straight segments, one path per colour.
   */
  drawLinks(scene, view, layoutOf) {
    const { ctx } = this;
    const { graph, camera, theme } = scene;
    const detailed = camera.scale >= DETAIL_SCALE;
    ctx.lineWidth = detailed ? 3 : 2 / Math.max(camera.scale, 0.2);
    ctx.globalAlpha = theme.linkAlpha;
    const batches = new Map();
    for (const link of graph.links()) {
      const origin = graph.node(link.origin_id);
      const target = graph.node(link.target_id);
      if (!origin || !target) continue;
      const a = nodeBounds(origin);
      const b = nodeBounds(target);
      const left = Math.min(a[0] + a[2], b[0]) - 60;
      const top = Math.min(a[1], b[1]) - 20;
      const right = Math.max(a[0] + a[2], b[0]) + 60;
      const bottom = Math.max(a[1] + a[3], b[1] + b[3]) + 20;
      if (right < view[0] || left > view[0] + view[2] || bottom < view[1] || top > view[1] + view[3]) continue;
      if (detailed) {
        ctx.strokeStyle = typeColor(link.type);
        this.strokeLink(slotPosition(layoutOf(origin), false, link.origin_slot), slotPosition(layoutOf(target), true, link.target_slot), false);
        continue;
      }
      const color = typeColor(link.type);
      if (!batches.has(color)) batches.set(color, []);
      batches.get(color).push(approximateSlotPosition(origin, false, link.origin_slot), approximateSlotPosition(target, true, link.target_slot));
    }
    for (const [color, points] of batches) {
      ctx.strokeStyle = color;
      ctx.beginPath();
      for (let i = 0; i < points.length; i += 2) {
        ctx.moveTo(points[i][0], points[i][1]);
        ctx.lineTo(points[i + 1][0], points[i + 1][1]);
      }
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
  }

  /**
   * Native litegraph reroutes (`extra.reroutes`, §4.1) are kept as data and shown as dots;
   * their links are drawn straight from origin to target.
   */
  drawNativeReroutes(scene) {
    const reroutes = scene.graph.document?.meta?.extra?.reroutes;
    if (!Array.isArray(reroutes)) return;
    const { ctx } = this;
    ctx.fillStyle = scene.theme.widgetLabel;
    for (const reroute of reroutes) {
      if (!Array.isArray(reroute?.pos)) continue;
      ctx.beginPath();
      ctx.arc(reroute.pos[0], reroute.pos[1], 5, 0, Math.PI * 2);
      ctx.fill();
    }
  }

  /** Zoomed far out: every visible node as a plain box, one fill per colour, no text. */
  drawNodeBoxes(scene, nodes) {
    const { ctx } = this;
    const batches = new Map();
    for (const node of nodes) {
      const status = scene.status.get(String(node.jsonId));
      const color = status?.error ? scene.theme.error : status?.running ? scene.theme.running
        : scene.selection.has(node.id) ? scene.theme.selection : node.mode === 4 ? "#8a3aa6" : node.mode === 2 ? "#555555"
          : scene.graph.def(node) ? node.color ?? scene.theme.nodeTitle : scene.theme.missing;
      if (!batches.has(color)) batches.set(color, []);
      batches.get(color).push(nodeBounds(node));
    }
    for (const [color, boxes] of batches) {
      ctx.fillStyle = color;
      ctx.beginPath();
      for (const [x, y, w, h] of boxes) ctx.rect(x, y, w, h);
      ctx.fill();
    }
  }

  strokeLink(from, to, straight) {
    const { ctx } = this;
    ctx.beginPath();
    ctx.moveTo(from[0], from[1]);
    if (straight) ctx.lineTo(to[0], to[1]);
    else {
      const bend = Math.max(40, Math.abs(to[0] - from[0]) * 0.5);
      ctx.bezierCurveTo(from[0] + bend, from[1], to[0] - bend, to[1], to[0], to[1]);
    }
    ctx.stroke();
  }

  /** Whether `node` could take the link being dragged (used to dim the others). */
  accepts(scene, node) {
    const drag = scene.interaction.dragLink;
    if (!drag) return true;
    if (String(node.jsonId) === String(drag.nodeId)) return false;
    const slots = drag.fromInput ? node.outputs : node.inputs;
    return slots.some((slot) => typesCompatible(drag.fromInput ? slot.type : drag.type, drag.fromInput ? drag.type : slot.type));
  }

  drawNode(scene, node, layout) {
    if (layout.reroute) {
      this.drawReroute(scene, node, layout);
      return;
    }
    const { ctx } = this;
    const { theme, camera, graph } = scene;
    const status = scene.status.get(String(node.jsonId));
    const def = graph.def(node);
    const known = Boolean(def) || graph.isSubgraphType(node.type);
    const detail = camera.scale >= DETAIL_SCALE;
    const { x, y, w, h } = layout;
    const top = y - TITLE_H;
    const fullH = h + TITLE_H;
    ctx.globalAlpha = (node.mode === 2 ? 0.4 : 1) * (this.accepts(scene, node) ? 1 : 0.35);
    const bodyColor = node.bgcolor ?? (known ? theme.nodeBody : theme.missing);
    const titleColor = node.color ?? (known ? theme.nodeTitle : "#7a1f1f");
    ctx.fillStyle = bodyColor;
    ctx.beginPath();
    ctx.roundRect(x, top, w, layout.collapsed ? TITLE_H : fullH, 6);
    ctx.fill();
    ctx.fillStyle = titleColor;
    ctx.beginPath();
    ctx.roundRect(x, top, w, TITLE_H, layout.collapsed ? 6 : [6, 6, 0, 0]);
    ctx.fill();
    if (node.mode === 4) {
      ctx.fillStyle = theme.bypass;
      ctx.beginPath();
      ctx.roundRect(x, top, w, layout.collapsed ? TITLE_H : fullH, 6);
      ctx.fill();
    }
    if (detail || camera.scale >= LOW_SCALE) {
      ctx.fillStyle = theme.nodeTitleText;
      ctx.font = "bold 13px sans-serif";
      ctx.textBaseline = "middle";
      const prefix = known ? "" : "⚠ ";
      const title = node.title ?? graph.subgraphDefinition(node.type)?.name ?? layout.title;
      const pinned = isPinned(node);
      ctx.fillText(fitText(ctx, prefix + title, w - (pinned ? 30 + PIN_MARKER_W : 30)), x + 22, top + TITLE_H / 2);
      if (pinned) this.drawPinMarker(theme, x + w - PIN_MARKER_W / 2 - 4, top + TITLE_H / 2);
      ctx.beginPath();
      ctx.fillStyle = layout.collapsed ? theme.widgetLabel : typeColor(node.outputs[0]?.type ?? "*");
      ctx.arc(x + 11, top + TITLE_H / 2, 4.5, 0, Math.PI * 2);
      ctx.fill();
    }
    if (status?.progress && status.progress.max > 0) {
      ctx.fillStyle = theme.running;
      ctx.fillRect(x, top, (w * status.progress.value) / status.progress.max, 3);
    }
    if (!layout.collapsed && detail) {
      this.drawSlots(scene, node, layout);
      ctx.font = "12px sans-serif";
      const values = graph.widgetValues(node);
      for (const row of layout.widgets) {
        const linked = node.inputs.some((input) => input.widget?.name === row.widget.name && input.link != null);
        drawWidget(ctx, theme, row, values[row.index], { linked, active: scene.interaction.activeWidget?.nodeId === node.jsonId && scene.interaction.activeWidget?.index === row.index });
      }
      if (!def) this.drawMissingValues(scene, node, layout);
      if (layout.image) this.drawImages(scene, status, layout.image);
    } else if (!layout.collapsed) {
      this.drawSlotDots(node, layout);
      if (layout.image) this.drawImages(scene, status, layout.image);
    }
    ctx.globalAlpha = 1;
    const outline = status?.error ? theme.error : status?.running ? theme.running : scene.selection.has(node.id) ? theme.selection : !known ? theme.error : null;
    if (outline) {
      ctx.strokeStyle = outline;
      ctx.lineWidth = status?.error || status?.running ? 3 : 1.5;
      ctx.beginPath();
      ctx.roundRect(x - 2, top - 2, w + 4, (layout.collapsed ? TITLE_H : fullH) + 4, 8);
      ctx.stroke();
    }
    const below = top + (layout.collapsed ? TITLE_H : fullH) + 6;
    if (status?.error && detail) this.drawErrorLabel(scene, status.error, x, below, w);
    else if (status?.text && detail) this.drawLabel(scene, status.text, x, below, w, "rgba(40, 60, 90, 0.9)");
  }

  /** A push-pin centred at (cx, cy): round head, short needle. */
  drawPinMarker(theme, cx, cy) {
    const { ctx } = this;
    ctx.strokeStyle = theme.nodeTitleText;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.moveTo(cx, cy - 1);
    ctx.lineTo(cx, cy + 6);
    ctx.stroke();
    ctx.fillStyle = theme.error;
    ctx.beginPath();
    ctx.arc(cx, cy - 3, 3.5, 0, Math.PI * 2);
    ctx.fill();
  }

  drawReroute(scene, node, layout) {
    const { ctx } = this;
    const { x, y, w, h } = layout;
    ctx.globalAlpha = (node.mode === 2 ? 0.4 : 1) * (this.accepts(scene, node) ? 1 : 0.35);
    ctx.fillStyle = scene.theme.nodeBody;
    ctx.beginPath();
    ctx.roundRect(x, y, w, h, h / 2);
    ctx.fill();
    this.drawSlotDots(node, layout);
    ctx.globalAlpha = 1;
    if (scene.selection.has(node.id)) {
      ctx.strokeStyle = scene.theme.selection;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.roundRect(x - 2, y - 2, w + 4, h + 4, h / 2 + 2);
      ctx.stroke();
    }
  }

  drawSlots(scene, node, layout) {
    const { ctx } = this;
    const drag = scene.interaction.dragLink;
    ctx.font = "12px sans-serif";
    ctx.textBaseline = "middle";
    for (const slot of layout.inputs) {
      const input = node.inputs[slot.index];
      const dim = drag && !drag.fromInput && !typesCompatible(drag.type, input.type);
      this.drawSlotDot(slot.x, slot.y, input.type, input.link != null, dim);
      if (slot.widgetIndex === undefined) {
        ctx.fillStyle = scene.theme.nodeText;
        ctx.textAlign = "left";
        ctx.fillText(slot.name, slot.x + 12, slot.y);
      }
    }
    for (const slot of layout.outputs) {
      const output = node.outputs[slot.index];
      const dim = drag && drag.fromInput && !typesCompatible(output.type, drag.type);
      this.drawSlotDot(slot.x, slot.y, output.type, (output.links ?? []).length > 0, dim);
      ctx.fillStyle = scene.theme.nodeText;
      ctx.textAlign = "right";
      ctx.fillText(slot.name, slot.x - 12, slot.y);
    }
    ctx.textAlign = "left";
  }

  drawSlotDots(node, layout) {
    for (const slot of layout.inputs) this.drawSlotDot(slot.x, slot.y, node.inputs[slot.index].type, true, false);
    for (const slot of layout.outputs) this.drawSlotDot(slot.x, slot.y, node.outputs[slot.index].type, true, false);
  }

  drawSlotDot(x, y, type, filled, dim) {
    const { ctx } = this;
    const alpha = ctx.globalAlpha;
    if (dim) ctx.globalAlpha = alpha * 0.25;
    ctx.beginPath();
    ctx.arc(x, y, SLOT_RADIUS, 0, Math.PI * 2);
    ctx.fillStyle = typeColor(type);
    ctx.strokeStyle = typeColor(type);
    ctx.lineWidth = 2;
    if (filled) ctx.fill();
    else ctx.stroke();
    ctx.globalAlpha = alpha;
  }

  drawMissingValues(scene, node, layout) {
    const { ctx } = this;
    ctx.fillStyle = scene.theme.nodeTitleText;
    ctx.font = "12px monospace";
    layout.rawValues.forEach((value, index) => {
      ctx.fillText(fitText(ctx, JSON.stringify(value), layout.w - 20), layout.x + 10, layout.rawTop + index * 20 + 10);
    });
  }

  drawImages(scene, status, area) {
    const { ctx } = this;
    const image = status.preview ?? status.images?.[status.imageIndex ?? 0];
    if (!image?.complete || !image.naturalWidth) return;
    const ratio = Math.min(area.w / image.naturalWidth, area.h / image.naturalHeight);
    const w = image.naturalWidth * ratio;
    const h = image.naturalHeight * ratio;
    ctx.imageSmoothingEnabled = ratio < 1;
    ctx.drawImage(image, area.x + (area.w - w) / 2, area.y + (area.h - h) / 2, w, h);
    ctx.imageSmoothingEnabled = true;
    if ((status.images?.length ?? 0) > 1 && !status.preview) {
      ctx.fillStyle = scene.theme.nodeText;
      ctx.font = "11px sans-serif";
      ctx.fillText(`${(status.imageIndex ?? 0) + 1} / ${status.images.length}`, area.x + 4, area.y + 10);
    }
  }

  drawErrorLabel(scene, message, x, y, w) {
    this.drawLabel(scene, message, x, y, w, "rgba(120, 0, 0, 0.9)");
  }

  /** A few wrapped lines of text in a box under a node (errors, text outputs). */
  drawLabel(scene, message, x, y, w, background) {
    const { ctx } = this;
    ctx.font = "12px sans-serif";
    const lines = wrapText(ctx, message, Math.max(w, 240)).slice(0, 4);
    ctx.fillStyle = background;
    ctx.fillRect(x, y, Math.max(w, 240), lines.length * 16 + 8);
    ctx.fillStyle = "#ffffff";
    ctx.textBaseline = "top";
    lines.forEach((line, index) => ctx.fillText(line, x + 6, y + 4 + index * 16));
    ctx.textBaseline = "middle";
  }

  drawInteraction(scene, layoutOf) {
    const { ctx } = this;
    const { interaction, graph, theme, camera } = scene;
    if (interaction.dragLink) {
      const drag = interaction.dragLink;
      const node = graph.node(drag.nodeId);
      if (node) {
        const start = slotPosition(layoutOf(node), drag.fromInput, drag.slot);
        ctx.strokeStyle = typeColor(drag.type);
        ctx.lineWidth = 3;
        if (drag.fromInput) this.strokeLink(drag.to, start, false);
        else this.strokeLink(start, drag.to, false);
      }
    }
    if (interaction.box) {
      const [x, y, w, h] = interaction.box;
      ctx.fillStyle = theme.boxSelect;
      ctx.strokeStyle = theme.boxSelectBorder;
      ctx.lineWidth = 1 / camera.scale;
      ctx.fillRect(x, y, w, h);
      ctx.strokeRect(x, y, w, h);
    }
  }
}
