/**
 * How each widget kind looks inside a node: numbers with ◀ ▶ arrows, combos with ▾, a
 * toggle for BOOLEAN, a text box for STRING (multi-line when the spec says so), a button for
 * image upload; an extension's custom widget draws itself with its own `draw` (litegraph's
 * convention: the context's origin at the node's body, `draw(ctx, node, width, y, height)`),
 * or shows its value as text. Pure drawing; `interaction/widgets.js` decides what a click on
 * each part does.
 */
import { decimalsOf } from "../model/widgets.js";
import { fitText, wrapText } from "./text.js";

export const ARROW_W = 14;

export function formatWidgetValue(widget, value) {
  if (widget.kind === "FLOAT") return Number(value ?? 0).toFixed(decimalsOf(widget));
  if (widget.kind === "BOOLEAN") return value ? (widget.options.label_on ?? "true") : (widget.options.label_off ?? "false");
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/**
 * Draw a custom widget with the extension's own `draw`. `host` is `{node, x, y, w}`: a plain
 * description of the node (id, type, title, pos, size) and its body's origin and width.
 * Returns false when the widget has no `draw` (or it threw), so the caller draws it as text.
 */
export function drawCustomWidget(ctx, row, value, host) {
  const custom = row.widget.custom;
  if (typeof custom?.draw !== "function") return false;
  custom.value = value;
  ctx.save();
  try {
    ctx.translate(host.x, host.y);
    custom.draw(ctx, host.node, host.w, row.y - host.y, row.h);
    return true;
  } catch (error) {
    console.error(`custom widget ${row.widget.name} could not draw`, error);
    custom.draw = null;
    return false;
  } finally {
    ctx.restore();
  }
}

/** Draw one widget row `{widget, x, y, w, h}` showing `value`. */
export function drawWidget(ctx, theme, row, value, { linked = false, active = false, host = null } = {}) {
  const { widget, x, y, w, h } = row;
  if (widget.kind === "CUSTOM" && !linked && host && drawCustomWidget(ctx, row, value, host)) return;
  ctx.fillStyle = theme.widgetBg;
  ctx.strokeStyle = active ? theme.selection : theme.widgetBorder;
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.roundRect(x, y, w, h, widget.kind === "STRING" && widget.options.multiline ? 4 : h / 2);
  ctx.fill();
  ctx.stroke();
  ctx.textBaseline = "middle";
  const label = widget.kind === "CONTROL" ? "control after generate" : widget.input?.options?.display_name ?? widget.name;
  const midY = y + h / 2;
  if (linked) {
    ctx.fillStyle = theme.widgetLabel;
    ctx.fillText(fitText(ctx, `${label} (linked)`, w - 20), x + 12, midY);
    return;
  }
  if (widget.kind === "UPLOAD") {
    ctx.fillStyle = theme.widgetText;
    ctx.textAlign = "center";
    ctx.fillText("choose file to upload", x + w / 2, midY);
    ctx.textAlign = "left";
    return;
  }
  if (widget.kind === "STRING" && widget.options.multiline) {
    ctx.fillStyle = value ? theme.widgetText : theme.widgetLabel;
    ctx.textBaseline = "top";
    const lines = wrapText(ctx, value || widget.options.placeholder || widget.name, w - 8);
    const maxLines = Math.floor((h - 8) / 15);
    lines.slice(0, maxLines).forEach((line, index) => ctx.fillText(fitText(ctx, line, w - 12), x + 6, y + 5 + index * 15));
    ctx.textBaseline = "middle";
    return;
  }
  const numeric = widget.kind === "INT" || widget.kind === "FLOAT";
  const choice = widget.kind === "COMBO" || widget.kind === "CONTROL";
  const inset = numeric || choice ? ARROW_W + 6 : 10;
  if (numeric || choice) {
    ctx.fillStyle = theme.widgetText;
    ctx.beginPath();
    ctx.moveTo(x + 6 + ARROW_W - 6, midY - 5);
    ctx.lineTo(x + 6, midY);
    ctx.lineTo(x + 6 + ARROW_W - 6, midY + 5);
    ctx.moveTo(x + w - 6 - ARROW_W + 6, midY - 5);
    ctx.lineTo(x + w - 6, midY);
    ctx.lineTo(x + w - 6 - ARROW_W + 6, midY + 5);
    ctx.fill();
  }
  if (widget.kind === "BOOLEAN") {
    ctx.beginPath();
    ctx.fillStyle = value ? "#89c46a" : theme.widgetLabel;
    ctx.arc(x + w - 14, midY, 6, 0, Math.PI * 2);
    ctx.fill();
  }
  ctx.fillStyle = theme.widgetLabel;
  const labelWidth = Math.min(ctx.measureText(label).width, w * 0.45);
  ctx.fillText(fitText(ctx, label, w * 0.45), x + inset, midY);
  ctx.fillStyle = theme.widgetText;
  ctx.textAlign = "right";
  const text = formatWidgetValue(widget, value);
  ctx.fillText(fitText(ctx, text, w - labelWidth - inset * 2 - 10), x + w - inset - (widget.kind === "BOOLEAN" ? 16 : 0), midY);
  ctx.textAlign = "left";
}
