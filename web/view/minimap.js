/**
 * A small overview of the whole graph in a corner `<canvas>`, with the visible area outlined;
 * clicking it centres the view there. The node boxes are drawn once per graph change into an
 * offscreen layer (one fill per colour); a frame only copies that layer and outlines the view,
 * so the minimap costs the same for 50 nodes or 5,000.
 */
import { graphBounds } from "../interaction/commands.js";
import { nodeBounds } from "./layout.js";
import { typeColor } from "./theme.js";

const INSET = 4;

export class Minimap {
  constructor(canvas, getEditor, onNavigate) {
    this.canvas = canvas;
    this.getEditor = getEditor;
    this.onNavigate = onNavigate;
    this.transform = null;
    this.layer = null;
    canvas.addEventListener("pointerdown", (event) => this.navigate(event));
    canvas.addEventListener("pointermove", (event) => event.buttons === 1 && this.navigate(event));
  }

  /** The background and node boxes of `graph`, redrawn only when the graph, theme or size changed. */
  #layerFor(graph, theme) {
    const { width, height } = this.canvas;
    const nodes = graph.nodes();
    const groups = graph.groups();
    const cached = this.layer;
    if (cached && cached.nodes === nodes && cached.groups === groups && cached.theme === theme && cached.width === width && cached.height === height) return cached;
    const canvas = cached?.canvas ?? document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = theme.name === "dark" ? "rgba(20,20,20,0.85)" : "rgba(255,255,255,0.85)";
    ctx.fillRect(0, 0, width, height);
    const bounds = graphBounds(graph);
    let transform = null;
    if (bounds) {
      const scale = Math.min((width - 2 * INSET) / bounds[2], (height - 2 * INSET) / bounds[3]);
      transform = { x0: bounds[0], y0: bounds[1], scale };
      const batches = new Map();
      for (const node of nodes) {
        const color = node.mode === 4 ? "#a040c0" : node.mode === 2 ? "#555" : typeColor(node.outputs?.[0]?.type ?? "*");
        if (!batches.has(color)) batches.set(color, new Path2D());
        batches.get(color).rect(...mapRect(transform, nodeBounds(node)));
      }
      for (const [color, path] of batches) {
        ctx.fillStyle = color;
        ctx.fill(path);
      }
    }
    this.layer = { canvas, nodes, groups, theme, width, height, transform };
    return this.layer;
  }

  draw(viewWidth, viewHeight, theme) {
    const editor = this.getEditor();
    const ctx = this.canvas.getContext("2d");
    const { width, height } = this.canvas;
    ctx.clearRect(0, 0, width, height);
    if (!editor) return;
    const layer = this.#layerFor(editor.graph, theme);
    ctx.drawImage(layer.canvas, 0, 0);
    this.transform = layer.transform;
    if (!layer.transform) return;
    const [x, y, w, h] = mapRect(layer.transform, editor.camera.visibleRect(viewWidth, viewHeight));
    const left = Math.max(0, x);
    const top = Math.max(0, y);
    ctx.strokeStyle = theme.selection;
    ctx.lineWidth = 1;
    ctx.strokeRect(left, top, Math.min(width, x + w) - left, Math.min(height, y + h) - top);
  }

  navigate(event) {
    if (!this.transform) return;
    const rect = this.canvas.getBoundingClientRect();
    const { x0, y0, scale } = this.transform;
    const graphX = (event.clientX - rect.left - INSET) / scale + x0;
    const graphY = (event.clientY - rect.top - INSET) / scale + y0;
    this.onNavigate([graphX, graphY]);
  }
}

/** A graph rectangle in minimap pixels (at least one pixel wide and high). */
function mapRect({ x0, y0, scale }, [x, y, w, h]) {
  return [INSET + (x - x0) * scale, INSET + (y - y0) * scale, Math.max(1, w * scale), Math.max(1, h * scale)];
}
