/**
 * A small overview of the whole graph in a corner `<canvas>`, with the visible area outlined;
 * clicking it centres the view there. Node boxes only, so it stays cheap for big graphs.
 */
import { graphBounds } from "../interaction/commands.js";
import { nodeBounds } from "./layout.js";
import { typeColor } from "./theme.js";

export class Minimap {
  constructor(canvas, getEditor, onNavigate) {
    this.canvas = canvas;
    this.getEditor = getEditor;
    this.onNavigate = onNavigate;
    this.transform = null;
    canvas.addEventListener("pointerdown", (event) => this.navigate(event));
    canvas.addEventListener("pointermove", (event) => event.buttons === 1 && this.navigate(event));
  }

  draw(viewWidth, viewHeight, theme) {
    const editor = this.getEditor();
    const ctx = this.canvas.getContext("2d");
    const { width, height } = this.canvas;
    ctx.clearRect(0, 0, width, height);
    ctx.fillStyle = theme.name === "dark" ? "rgba(20,20,20,0.85)" : "rgba(255,255,255,0.85)";
    ctx.fillRect(0, 0, width, height);
    const bounds = editor && graphBounds(editor.graph);
    if (!bounds) return;
    const view = editor.camera.visibleRect(viewWidth, viewHeight);
    const x0 = Math.min(bounds[0], view[0]);
    const y0 = Math.min(bounds[1], view[1]);
    const x1 = Math.max(bounds[0] + bounds[2], view[0] + view[2]);
    const y1 = Math.max(bounds[1] + bounds[3], view[1] + view[3]);
    const scale = Math.min((width - 8) / (x1 - x0), (height - 8) / (y1 - y0));
    this.transform = { x0, y0, scale };
    const map = ([x, y, w, h]) => [4 + (x - x0) * scale, 4 + (y - y0) * scale, Math.max(1, w * scale), Math.max(1, h * scale)];
    for (const node of editor.graph.nodes()) {
      ctx.fillStyle = node.mode === 4 ? "#a040c0" : node.mode === 2 ? "#555" : typeColor(node.outputs?.[0]?.type ?? "*");
      ctx.fillRect(...map(nodeBounds(node)));
    }
    ctx.strokeStyle = theme.selection;
    ctx.lineWidth = 1;
    ctx.strokeRect(...map(view));
  }

  navigate(event) {
    if (!this.transform) return;
    const rect = this.canvas.getBoundingClientRect();
    const { x0, y0, scale } = this.transform;
    const graphX = (event.clientX - rect.left - 4) / scale + x0;
    const graphY = (event.clientY - rect.top - 4) / scale + y0;
    this.onNavigate([graphX, graphY]);
  }
}
