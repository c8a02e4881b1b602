/**
 * Draws one editor tab on a `<canvas>` (litegraph's rendering ideas, written for Kiln):
 * redraw only when marked dirty, a cached grid tile as the background layer, nodes and links
 * outside the viewport culled, and below `DETAIL_SCALE` the overview layer (boxes and straight
 * links from cached per-colour paths, no text, slots or widgets). Draws only: it never changes
 * the graph.
 */
import { rectsOverlap } from "./camera.js";
import { CullIndex } from "./cull.js";
import { layoutNode, slotPosition, SLOT_RADIUS, SUBGRAPH_BUTTON_W, TITLE_H } from "./layout.js";
import { curveControls, linkPoints, REROUTE_RADIUS } from "./link_geometry.js";
import { OverviewLayer } from "./overview.js";
import { typeColor } from "./theme.js";
import { fitText, wrapText } from "./text.js";
import { drawWidget } from "./widgets_draw.js";
import { isPinned } from "../model/graph.js";
import { typesCompatible } from "../model/nodedefs.js";

/** Below this zoom, text is under ~6 px and slots under 3 px: the overview layer draws instead. */
const DETAIL_SCALE = 0.5;
const LOW_SCALE = 0.2;
const SHARPEN_DELAY_MS = 150;
const PIN_MARKER_W = 10;
const GRID = 20;
/** Minor grid lines closer than this on screen are left out. */
const MIN_MINOR_GRID_PX = 6;

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
    this.running = false;
    this.overview = new OverviewLayer();
    this.cull = new CullIndex();
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
    const visibleNodes = () => this.cull.visibleNodes(scene.graph, view);
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
    if (camera.scale < DETAIL_SCALE) {
      const visibleLinks = () => this.cull.visibleLinks(scene.graph, view);
      if (this.overview.draw(ctx, scene, { visibleNodes, visibleLinks, pixelRatio: ratio })) this.sharpenOverviewSoon();
      this.drawNativeReroutes(scene);
    } else {
      this.drawLinks(scene, view, layoutOf);
      this.drawNativeReroutes(scene);
      for (const node of visibleNodes()) this.drawNode(scene, node, layoutOf(node));
    }
    this.drawInteraction(scene, layoutOf);
    ctx.restore();
    this.frameTimes.push(performance.now() - started);
    if (this.frameTimes.length > 600) this.frameTimes.shift();
    this.drawCount += 1;
    this.onAfterDraw?.(scene, width, height);
  }

  /** Once the zoom has rested, redraw the overview bitmap at the exact zoom. */
  sharpenOverviewSoon() {
    clearTimeout(this.sharpenTimer);
    this.sharpenTimer = setTimeout(() => {
      this.overview.sharpen();
      this.markDirty();
    }, SHARPEN_DELAY_MS);
  }

  drawBackground(scene, width, height) {
    const { ctx } = this;
    const { theme, camera } = scene;
    ctx.fillStyle = theme.background;
    ctx.fillRect(0, 0, width, height);
    if (camera.scale < LOW_SCALE) return;
    // Grid lines as two hairline paths (minor, then every fifth line strong): far cheaper to
    // rasterise on the CPU than a pattern fill of the whole canvas.
    const step = GRID * camera.scale;
    const minor = new Path2D();
    const strong = new Path2D();
    const firstX = Math.ceil(-camera.offset[0] / GRID);
    const firstY = Math.ceil(-camera.offset[1] / GRID);
    for (let k = firstX, x = (k * GRID + camera.offset[0]) * camera.scale; x <= width; k++, x += step) {
      const path = k % 5 === 0 ? strong : step >= MIN_MINOR_GRID_PX ? minor : null;
      if (!path) continue;
      path.moveTo(Math.round(x) + 0.5, 0);
      path.lineTo(Math.round(x) + 0.5, height);
    }
    for (let k = firstY, y = (k * GRID + camera.offset[1]) * camera.scale; y <= height; k++, y += step) {
      const path = k % 5 === 0 ? strong : step >= MIN_MINOR_GRID_PX ? minor : null;
      if (!path) continue;
      path.moveTo(0, Math.round(y) + 0.5);
      path.lineTo(width, Math.round(y) + 0.5);
    }
    ctx.lineWidth = 1;
    ctx.strokeStyle = theme.grid;
    ctx.stroke(minor);
    ctx.strokeStyle = theme.gridStrong;
    ctx.stroke(strong);
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
   * Links whose bounding box meets the view (a link through reroutes is always drawn), one
   * curve per segment between its origin, its reroutes and its target.
   */
  drawLinks(scene, view, layoutOf) {
    const { ctx } = this;
    const { graph, theme } = scene;
    ctx.lineWidth = 3;
    ctx.globalAlpha = theme.linkAlpha;
    for (const [link] of this.cull.visibleLinks(graph, view)) {
      ctx.strokeStyle = typeColor(link.type);
      this.strokePath(linkPoints(graph, link, layoutOf));
    }
    ctx.globalAlpha = 1;
  }

  /** One curve per pair of consecutive points, as one stroke. */
  strokePath(points) {
    const { ctx } = this;
    ctx.beginPath();
    ctx.moveTo(points[0][0], points[0][1]);
    for (let i = 1; i < points.length; i++) {
      const [c1, c2] = curveControls(points[i - 1], points[i]);
      ctx.bezierCurveTo(c1[0], c1[1], c2[0], c2[1], points[i][0], points[i][1]);
    }
    ctx.stroke();
  }

  /** Native litegraph reroutes (§4.1): dots that links pass through; the selected ones ringed. */
  drawNativeReroutes(scene) {
    const { ctx } = this;
    const { graph, theme, selection } = scene;
    for (const reroute of graph.reroutes()) {
      if (!Array.isArray(reroute.pos)) continue;
      const [x, y] = reroute.pos;
      const link = graph.link(reroute.linkIds?.[0]);
      ctx.fillStyle = link ? typeColor(link.type) : theme.widgetLabel;
      ctx.beginPath();
      ctx.arc(x, y, REROUTE_RADIUS, 0, Math.PI * 2);
      ctx.fill();
      if (selection.has(reroute.id)) {
        ctx.strokeStyle = theme.selection;
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.arc(x, y, REROUTE_RADIUS + 3, 0, Math.PI * 2);
        ctx.stroke();
      }
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
    const { theme, graph } = scene;
    const status = scene.status.get(String(node.jsonId));
    const def = graph.def(node);
    const isSubgraph = graph.isSubgraphType(node.type);
    const known = Boolean(def) || isSubgraph;
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
    ctx.fillStyle = theme.nodeTitleText;
    ctx.font = "bold 13px sans-serif";
    ctx.textBaseline = "middle";
    const prefix = known ? "" : "⚠ ";
    const title = layout.title;
    const pinned = isPinned(node);
    const button = isSubgraph ? SUBGRAPH_BUTTON_W : 0;
    ctx.fillText(fitText(ctx, prefix + title, w - button - (pinned ? 30 + PIN_MARKER_W : 30)), x + 22, top + TITLE_H / 2);
    if (pinned) this.drawPinMarker(theme, x + w - button - PIN_MARKER_W / 2 - 4, top + TITLE_H / 2);
    if (isSubgraph) this.drawSubgraphButton(theme, x + w - SUBGRAPH_BUTTON_W / 2 - 2, top + TITLE_H / 2);
    ctx.beginPath();
    ctx.fillStyle = layout.collapsed ? theme.widgetLabel : typeColor(node.outputs[0]?.type ?? "*");
    ctx.arc(x + 11, top + TITLE_H / 2, 4.5, 0, Math.PI * 2);
    ctx.fill();
    if (status?.progress && status.progress.max > 0) {
      ctx.fillStyle = theme.running;
      ctx.fillRect(x, top, (w * status.progress.value) / status.progress.max, 3);
    }
    if (!layout.collapsed) {
      this.drawSlots(scene, node, layout);
      ctx.font = "12px sans-serif";
      const values = graph.widgetValues(node);
      const host = layout.widgets.some((row) => row.widget.kind === "CUSTOM")
        ? { node: { id: node.jsonId, type: node.type, title: layout.title, pos: [x, y], size: [w, h] }, x, y, w } : null;
      for (const row of layout.widgets) {
        const linked = node.inputs.some((input) => input.widget?.name === row.widget.name && input.link != null);
        const active = scene.interaction.activeWidget?.nodeId === node.jsonId && scene.interaction.activeWidget?.index === row.index;
        drawWidget(ctx, theme, row, values[row.index], { linked, active, host });
      }
      if (!def) this.drawMissingValues(scene, node, layout);
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
    if (status?.error) this.drawErrorLabel(scene, status.error, x, below, w);
    else if (status?.text) this.drawLabel(scene, status.text, x, below, w, "rgba(40, 60, 90, 0.9)");
  }

  /** The "open subgraph" button: two stacked frames centred at (cx, cy). */
  drawSubgraphButton(theme, cx, cy) {
    const { ctx } = this;
    ctx.strokeStyle = theme.nodeTitleText;
    ctx.lineWidth = 1.5;
    ctx.strokeRect(cx - 6, cy - 3, 9, 8);
    ctx.beginPath();
    ctx.moveTo(cx - 3, cy - 6);
    ctx.lineTo(cx + 6, cy - 6);
    ctx.lineTo(cx + 6, cy + 2);
    ctx.stroke();
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
