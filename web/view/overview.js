/**
 * The zoomed-out drawing of a graph: every node a plain box (title strip and body), every link
 * a straight line through its reroutes, no text, slots or widgets (litegraph's "draw less when
 * zoomed out"), one fill or stroke per colour.
 *
 * When the whole graph fits in a modest bitmap at the current zoom (e.g. "fit view" on a big
 * graph), it is rasterised once into an offscreen canvas and each frame is one `drawImage`;
 * the bitmap is rebuilt when the graph changes, and when the zoom has moved more than a little
 * (a slightly rescaled bitmap is shown meanwhile, then redrawn sharp once the zoom rests).
 * Otherwise only the nodes and links in view are batched and drawn. What changes without a
 * graph change (selection, run status) is outlined on top, node by node.
 */
import { approximateSlotPosition, nodeBounds, TITLE_H } from "./layout.js";
import { typeColor } from "./theme.js";
import { reroutePath } from "../model/reroutes.js";

const MUTED = 2;
const BYPASSED = 4;
const MUTED_ALPHA = 0.4;
const BYPASS_COLOR = "#8a3aa6";
/** Link width on screen, in device pixels, whatever the zoom (1: Skia's fast hairlines). */
const LINK_PIXELS = 1;
/** Largest offscreen bitmap of the whole graph, in device pixels (area and side). */
const BITMAP_MAX_AREA = 2048 * 2048;
const BITMAP_MAX_SIDE = 4096;
/** A bitmap made at scale s is shown for zooms within s / ZOOM_SLACK .. s * ZOOM_SLACK. */
const ZOOM_SLACK = 1.2;
const BITMAP_MARGIN = 8;

function batch(batches, key) {
  let path = batches.get(key);
  if (!path) batches.set(key, (path = new Path2D()));
  return path;
}

/** Colour keys `alpha|colour` of a node's title strip and body. */
function nodeColors(graph, theme, node) {
  const known = Boolean(graph.def(node)) || graph.isSubgraphType(node.type);
  const alpha = node.mode === MUTED ? MUTED_ALPHA : 1;
  const title = node.mode === BYPASSED ? BYPASS_COLOR : node.color ?? (known ? theme.nodeTitle : "#7a1f1f");
  return [`${alpha}|${title}`, `${alpha}|${node.bgcolor ?? (known ? theme.nodeBody : theme.missing)}`];
}

function addNodeBox(boxes, graph, theme, node) {
  const [titleKey, bodyKey] = nodeColors(graph, theme, node);
  const [x, y, w, h] = nodeBounds(node);
  batch(boxes, titleKey).rect(x, y, w, Math.min(h, TITLE_H));
  if (h > TITLE_H) batch(boxes, bodyKey).rect(x, y + TITLE_H, w, h - TITLE_H);
}

function addLinkLine(lines, graph, link, origin, target) {
  const path = batch(lines, typeColor(link.type));
  const [x0, y0] = approximateSlotPosition(origin, false, link.origin_slot);
  path.moveTo(x0, y0);
  if (link.parentId != null) for (const reroute of reroutePath(graph, link)) path.lineTo(reroute.pos[0], reroute.pos[1]);
  const [x1, y1] = approximateSlotPosition(target, true, link.target_slot);
  path.lineTo(x1, y1);
}

/** Stroke the link batches, then fill the box batches, with `pixel` graph units per device pixel. */
function paint(ctx, theme, lines, boxes, pixel) {
  ctx.lineWidth = LINK_PIXELS * pixel;
  ctx.globalAlpha = theme.linkAlpha;
  for (const [color, path] of lines) {
    ctx.strokeStyle = color;
    ctx.stroke(path);
  }
  for (const [key, path] of boxes) {
    const split = key.indexOf("|");
    ctx.globalAlpha = Number(key.slice(0, split));
    ctx.fillStyle = key.slice(split + 1);
    ctx.fill(path);
  }
  ctx.globalAlpha = 1;
}

export class OverviewLayer {
  #nodes = null;
  #links = null;
  #reroutes = null;
  #theme = null;
  #boxes = new Map();
  #lines = new Map();
  #bounds = null;
  #bitmap = null;

  /** Rebuild the whole-graph paths when the graph (or the theme) changed since the last call. */
  #update(graph, theme) {
    const nodes = graph.nodes();
    const links = graph.links();
    const reroutes = graph.reroutes();
    if (nodes === this.#nodes && links === this.#links && reroutes === this.#reroutes && theme === this.#theme) return;
    this.#nodes = nodes;
    this.#links = links;
    this.#reroutes = reroutes;
    this.#theme = theme;
    this.#bitmap = null;
    this.#boxes = new Map();
    let [left, top, right, bottom] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const node of nodes) {
      addNodeBox(this.#boxes, graph, theme, node);
      const [x, y, w, h] = nodeBounds(node);
      left = Math.min(left, x);
      top = Math.min(top, y);
      right = Math.max(right, x + w);
      bottom = Math.max(bottom, y + h);
    }
    for (const { pos } of reroutes) {
      left = Math.min(left, pos[0]);
      top = Math.min(top, pos[1]);
      right = Math.max(right, pos[0]);
      bottom = Math.max(bottom, pos[1]);
    }
    this.#bounds = left <= right ? [left - BITMAP_MARGIN, top - BITMAP_MARGIN, right - left + 2 * BITMAP_MARGIN, bottom - top + 2 * BITMAP_MARGIN] : null;
    this.#lines = new Map();
    for (const link of links) {
      const origin = graph.node(link.origin_id);
      const target = graph.node(link.target_id);
      if (origin && target) addLinkLine(this.#lines, graph, link, origin, target);
    }
  }

  /** The whole graph rasterised at `deviceScale` device pixels per graph unit, or null when too big. */
  #bitmapAt(deviceScale) {
    const cached = this.#bitmap;
    if (cached && deviceScale <= cached.deviceScale * ZOOM_SLACK && deviceScale >= cached.deviceScale / ZOOM_SLACK) return cached;
    if (!this.#bounds) return null;
    const [x, y, w, h] = this.#bounds;
    const width = Math.ceil(w * deviceScale);
    const height = Math.ceil(h * deviceScale);
    if (width * height > BITMAP_MAX_AREA || width > BITMAP_MAX_SIDE || height > BITMAP_MAX_SIDE) return null;
    const canvas = cached?.canvas ?? document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(deviceScale, 0, 0, deviceScale, -x * deviceScale, -y * deviceScale);
    paint(ctx, this.#theme, this.#lines, this.#boxes, 1 / deviceScale);
    this.#bitmap = { canvas, deviceScale, bounds: this.#bounds };
    return this.#bitmap;
  }

  /**
   * Draw the graph as boxes and lines, then outline the selected, running and failed nodes.
   * @param {CanvasRenderingContext2D} ctx transformed to graph units
   * @param {object} scene the renderer's scene
   * @param {{visibleNodes: () => object[], visibleLinks: () => Array, pixelRatio: number}} view
   * @returns {boolean} whether a slightly rescaled bitmap was shown (redraw once the zoom rests)
   */
  draw(ctx, scene, { visibleNodes, visibleLinks, pixelRatio }) {
    const { graph, theme, camera } = scene;
    this.#update(graph, theme);
    const deviceScale = camera.scale * pixelRatio;
    const bitmap = this.#bitmapAt(deviceScale);
    if (bitmap) {
      const [x, y, w, h] = bitmap.bounds;
      ctx.imageSmoothingEnabled = bitmap.deviceScale !== deviceScale;
      ctx.drawImage(bitmap.canvas, x, y, w, h);
      ctx.imageSmoothingEnabled = true;
    } else {
      const boxes = new Map();
      const lines = new Map();
      for (const [link, origin, target] of visibleLinks()) if (origin && target) addLinkLine(lines, graph, link, origin, target);
      for (const node of visibleNodes()) addNodeBox(boxes, graph, theme, node);
      paint(ctx, theme, lines, boxes, 1 / deviceScale);
    }
    this.#outline(ctx, scene, visibleNodes);
    return Boolean(bitmap) && bitmap.deviceScale !== deviceScale;
  }

  /** Make the next draw rasterise the bitmap at the zoom of that moment. */
  sharpen() {
    if (this.#bitmap) this.#bitmap = { ...this.#bitmap, deviceScale: NaN };
  }

  #outline(ctx, scene, visibleNodes) {
    const { theme, selection, status, camera } = scene;
    if (!selection.size && !status.size) return;
    ctx.lineWidth = 2 / camera.scale;
    for (const node of visibleNodes()) {
      const state = status.size ? status.get(String(node.jsonId)) : undefined;
      const color = state?.error ? theme.error : state?.running ? theme.running : selection.has(node.id) ? theme.selection : null;
      if (!color) continue;
      const [x, y, w, h] = nodeBounds(node);
      ctx.strokeStyle = color;
      ctx.strokeRect(x, y, w, h);
    }
  }
}
