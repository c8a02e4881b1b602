/**
 * Pointer behaviour of node widgets: numbers change by dragging (one step per 6 px) or by
 * the ◀ ▶ arrows, and a plain click opens a text field; combos cycle with the arrows or open a
 * filterable list; BOOLEAN toggles; STRING opens an editor in place; the upload button opens a
 * file picker; an extension's custom widget gets the click through its own `mouse` callback,
 * else offers its `options.values` to pick from, else a text field. Each change is one undo
 * step (a drag is one step in total).
 */
import { constrainNumber, stepOf } from "../model/widgets.js";
import { ARROW_W } from "../view/widgets_draw.js";

const DRAG_PIXELS_PER_STEP = 6;

function isWidgetLinked(node, widget) {
  return node.inputs.some((input) => input.widget?.name === widget.name && input.link != null);
}

/** Start a pointer interaction on widget `hit.row`; returns a drag `{onMove, onUp}` or null. */
export function widgetPointerDown(app, hit, point, screen) {
  const editor = app.editor;
  const { graph } = editor;
  const { node, row } = hit;
  const { widget, index } = row;
  if (isWidgetLinked(node, widget)) return null;
  const nodeId = node.jsonId;
  const value = graph.widgetValues(node)[index];
  const set = (next) => graph.history.group(() => graph.setWidgetValue(nodeId, index, next));
  const onLeftArrow = point[0] < row.x + ARROW_W + 6;
  const onRightArrow = point[0] > row.x + row.w - ARROW_W - 6;
  const screenRect = () => {
    const [x, y] = editor.camera.graphToScreen([row.x, row.y]);
    return { x, y, w: row.w * editor.camera.scale, h: row.h * editor.camera.scale };
  };

  switch (widget.kind) {
    case "INT":
    case "FLOAT": {
      const step = stepOf(widget);
      let accumulated = 0;
      let dragged = false;
      graph.history.begin();
      editor.interaction.activeWidget = { nodeId, index };
      return {
        kind: "widget",
        onMove(current, currentScreen) {
          const dx = currentScreen[0] - screen[0];
          if (!dragged && Math.abs(dx) < 4) return;
          dragged = true;
          const steps = Math.trunc(dx / DRAG_PIXELS_PER_STEP);
          if (steps !== accumulated) {
            accumulated = steps;
            graph.setWidgetValue(nodeId, index, constrainNumber(widget, value + steps * step));
          }
        },
        onUp() {
          graph.history.end();
          editor.interaction.activeWidget = null;
          if (dragged) return;
          if (onLeftArrow) set(constrainNumber(widget, value - step));
          else if (onRightArrow) set(constrainNumber(widget, value + step));
          else app.ui.editText({ rect: screenRect(), value: String(value), onCommit: (text) => set(constrainNumber(widget, evaluateNumber(text, value))) });
        },
      };
    }
    case "COMBO":
    case "CONTROL": {
      const values = widget.options.values ?? [];
      const position = values.indexOf(value);
      if (onLeftArrow || onRightArrow) {
        const next = values[Math.min(values.length - 1, Math.max(0, position + (onLeftArrow ? -1 : 1)))];
        if (next !== undefined) set(next);
        return null;
      }
      return onRelease(() => app.ui.chooseFromList({ rect: screenRect(), values, current: value, onPick: set }));
    }
    case "BOOLEAN":
      set(!value);
      return null;
    case "STRING":
      return onRelease(() => app.ui.editText({ rect: screenRect(), value: String(value ?? ""), multiline: Boolean(widget.options.multiline), onCommit: set }));
    case "UPLOAD":
      return onRelease(() => app.ui.pickImageFile((file) => app.uploadToNode(nodeId, file)));
    case "CUSTOM":
      return customWidgetPointerDown(app, hit, point, value, set, screenRect);
    default:
      return null;
  }
}

/** A click on an extension's widget (see the module comment); returns a drag or null. */
function customWidgetPointerDown(app, hit, point, value, set, screenRect) {
  const { node, row } = hit;
  const custom = row.widget.custom;
  const commit = (next) => {
    set(next);
    custom.value = next;
    custom.callback?.(next);
  };
  if (typeof custom.mouse === "function") {
    custom.value = value;
    const nodeObject = { id: node.jsonId, type: node.type, pos: [...node.pos], size: [...node.size] };
    custom.mouse({ type: "pointerdown" }, [point[0] - node.pos[0], point[1] - node.pos[1]], nodeObject);
    if (custom.value !== value) commit(custom.value);
    return null;
  }
  const values = custom.options?.values;
  if (Array.isArray(values)) return onRelease(() => app.ui.chooseFromList({ rect: screenRect(), values, current: value, onPick: commit }));
  const text = typeof value === "string" ? value : JSON.stringify(value ?? "");
  return onRelease(() => app.ui.editText({ rect: screenRect(), value: text, onCommit: (typed) => commit(parseLike(typed, value)) }));
}

/** Text typed for a custom widget, read as the kind of value it had (number, boolean, JSON, text). */
export function parseLike(text, previous) {
  if (typeof previous === "number") return evaluateNumber(text, previous);
  if (typeof previous === "boolean") return String(text).trim() === "true";
  if (previous !== null && typeof previous === "object") {
    try {
      return JSON.parse(text);
    } catch {
      return previous;
    }
  }
  return text;
}

/**
 * Open editors and pickers when the button is released: the press itself moves the focus to
 * the canvas, which would blur (and close) a field opened on press.
 */
function onRelease(open) {
  return { kind: "widget", onMove() {}, onUp: open };
}

/** The number typed into a numeric widget's text field; `previous` when it is not a number. */
export function evaluateNumber(text, previous) {
  const number = Number(String(text).trim());
  return String(text).trim() !== "" && Number.isFinite(number) ? number : previous;
}
