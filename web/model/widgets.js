/**
 * Widgets of a node and the `widgets_values` mapping (comfy-compat §4.4).
 *
 * `widgets_values` is the list of widget values in creation order: the def's inputs that get a
 * widget, each INT (or combo) with `control_after_generate` (or named `seed`/`noise_seed`)
 * followed by a `control_after_generate` combo, and an image-upload combo followed by an
 * `upload` button whose saved value is `"image"`. The control and upload entries are kept in
 * `widgets_values` but never sent in the API prompt. An input of a type an extension made a
 * widget for (`getCustomWidgets`) gets a "CUSTOM" widget holding that extension's widget.
 */

export const CONTROL_VALUES = ["fixed", "increment", "decrement", "randomize"];
export const CONTROL_WIDGET = "control_after_generate";

function hasControl(input) {
  if (input.type === "INT") return Boolean(input.options.control_after_generate) || input.name === "seed" || input.name === "noise_seed";
  if (input.type === "COMBO") return Boolean(input.options.control_after_generate);
  return false;
}

function defaultValue(input) {
  const { type, options } = input;
  if (options.default !== undefined) return options.default;
  if (type === "INT" || type === "FLOAT") return Math.max(0, options.min ?? 0);
  if (type === "STRING") return "";
  if (type === "BOOLEAN") return false;
  if (type === "COMBO") return options.values?.[0] ?? "";
  return null;
}

/**
 * The widgets of a def in creation order:
 * `{name, kind, input, options, serialize, defaultValue}`; `kind` is the input type
 * ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO") or "CONTROL" / "UPLOAD".
 */
export function widgetsForDef(def) {
  const widgets = [];
  for (const input of def.inputs) {
    if (!input.hasWidget) continue;
    if (input.customWidget) {
      const custom = input.customWidget;
      const defaultValue = custom.value !== undefined ? custom.value : input.options.default ?? null;
      widgets.push({ name: input.name, kind: "CUSTOM", input, options: custom.options ?? {}, serialize: custom.options?.serialize !== false, defaultValue, custom });
      continue;
    }
    widgets.push({ name: input.name, kind: input.type, input, options: input.options, serialize: true, defaultValue: defaultValue(input) });
    if (hasControl(input)) {
      const values = input.type === "COMBO" ? [...CONTROL_VALUES, "increment-wrap"] : CONTROL_VALUES;
      const chosen = typeof input.options.control_after_generate === "string" ? input.options.control_after_generate : "randomize";
      widgets.push({ name: CONTROL_WIDGET, kind: "CONTROL", input: null, options: { values }, serialize: false, defaultValue: chosen, controls: input.name });
    }
    if (input.type === "COMBO" && (input.options.image_upload || input.options.upload)) {
      widgets.push({ name: "upload", kind: "UPLOAD", input: null, options: {}, serialize: false, defaultValue: "image", uploads: input.name });
    }
  }
  return widgets;
}

export function defaultWidgetValues(widgets) {
  return widgets.map((widget) => widget.defaultValue);
}

/**
 * Align saved `widgets_values` (a list, or a dict keyed by widget name) with `widgets`.
 * Older files lack the control entry after a seed: a saved value that is not one of the
 * control choices is taken as the next widget's value and the control gets its default.
 */
export function valuesForWidgets(widgets, saved) {
  if (saved && !Array.isArray(saved) && typeof saved === "object") {
    return widgets.map((widget) => (widget.name in saved ? saved[widget.name] : widget.defaultValue));
  }
  const values = Array.isArray(saved) ? saved : [];
  const aligned = [];
  let cursor = 0;
  for (const widget of widgets) {
    if (cursor >= values.length) {
      aligned.push(widget.defaultValue);
      continue;
    }
    const value = values[cursor];
    const looksLikeOwnValue = widget.kind === "CONTROL" ? widget.options.values.includes(value)
      : widget.kind === "UPLOAD" ? value === "image" || value === null : true;
    if (looksLikeOwnValue) {
      aligned.push(value);
      cursor += 1;
    } else {
      aligned.push(widget.defaultValue);
    }
  }
  return aligned;
}

/** Clamp and snap a number the way a numeric widget does: min/max, then precision. */
export function constrainNumber(widget, value) {
  const { min = -Infinity, max = Infinity } = widget.options;
  let number = Number(value);
  if (!Number.isFinite(number)) number = Number(widget.defaultValue) || 0;
  number = Math.min(max, Math.max(min, number));
  if (widget.kind === "INT") return Math.round(number);
  const round = widget.options.round ?? (widget.options.step && widget.options.step < 1 ? widget.options.step / 10 : 0.01);
  if (round) number = Math.round(number / round) * round;
  return Number(number.toFixed(decimalsOf(widget)));
}

/** Number of decimals shown for a FLOAT widget (from `round` or `step`). */
export function decimalsOf(widget) {
  if (widget.kind === "INT") return 0;
  const quantum = widget.options.round || widget.options.step || 0.01;
  const text = String(quantum);
  return text.includes(".") ? Math.min(10, text.split(".")[1].length) : 0;
}

/** Step used by arrows and dragging: `step` of the spec (default 1 for INT, 0.1 for FLOAT). */
export function stepOf(widget) {
  return widget.options.step ?? (widget.kind === "INT" ? 1 : 0.1);
}

/**
 * The value a `control_after_generate` widget gives its target after a queue:
 * fixed keeps it, increment/decrement move by the step within min/max, randomize draws in range.
 */
export function nextControlledValue(mode, widget, value, random = Math.random) {
  if (widget.kind === "COMBO") {
    const values = widget.options.values ?? [];
    const index = values.indexOf(value);
    if (mode === "increment") return values[Math.min(values.length - 1, index + 1)] ?? value;
    if (mode === "increment-wrap") return values[(index + 1) % values.length] ?? value;
    if (mode === "decrement") return values[Math.max(0, index - 1)] ?? value;
    if (mode === "randomize") return values[Math.floor(random() * values.length)] ?? value;
    return value;
  }
  const min = widget.options.min ?? 0;
  const max = Math.min(widget.options.max ?? Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const step = widget.kind === "INT" ? Math.max(1, Math.round(widget.options.step ?? 1)) : stepOf(widget);
  if (mode === "increment") return Math.min(max, value + step);
  if (mode === "decrement") return Math.max(min, value - step);
  if (mode === "randomize") {
    const span = Math.min(max - min, 1125899906842624);
    return min + Math.floor(random() * (span + 1));
  }
  return value;
}

/** The widget values after one queue, for every control widget in "after" mode. */
export function applyControlAfterGenerate(widgets, values, random = Math.random) {
  const next = [...values];
  widgets.forEach((widget, index) => {
    if (widget.kind !== "CONTROL") return;
    const targetIndex = widgets.findIndex((w) => w.name === widget.controls && w.kind !== "CONTROL");
    if (targetIndex < 0) return;
    next[targetIndex] = nextControlledValue(values[index], widgets[targetIndex], values[targetIndex], random);
  });
  return next;
}
