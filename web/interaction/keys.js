/**
 * Keyboard shortcuts (the help panel lists the same table). Keys typed into a text field
 * are left alone.
 */
import { isTyping } from "./pointer.js";

/** `[combo, description, action name]`; combos use `Ctrl` for Ctrl or ⌘. */
export const SHORTCUTS = [
  ["Ctrl+Enter", "Queue the workflow", "queue"],
  ["Ctrl+Shift+Enter", "Queue at the front", "queueFront"],
  ["Ctrl+S", "Save the workflow", "save"],
  ["Ctrl+O", "Open a workflow", "open"],
  ["Ctrl+Z", "Undo", "undo"],
  ["Ctrl+Y", "Redo", "redo"],
  ["Ctrl+Shift+Z", "Redo", "redo"],
  ["Ctrl+C", "Copy selected nodes", "copy"],
  ["Ctrl+V", "Paste", "paste"],
  ["Ctrl+Shift+V", "Paste keeping input links", "pasteWithLinks"],
  ["Ctrl+D", "Duplicate selected nodes", "duplicate"],
  ["Ctrl+A", "Select all nodes", "selectAll"],
  ["Ctrl+M", "Mute / unmute selected nodes", "mute"],
  ["Ctrl+B", "Bypass / un-bypass selected nodes", "bypass"],
  ["Ctrl+G", "Group selected nodes", "group"],
  ["Alt+C", "Collapse / expand selected nodes", "collapse"],
  ["P", "Pin / unpin selected nodes (pinned nodes cannot be dragged)", "pin"],
  ["Delete", "Delete selected nodes", "delete"],
  ["Backspace", "Delete selected nodes", "delete"],
  [".", "Fit the view to the graph", "fit"],
  ["R", "Refresh node definitions and combo lists from the server", "refresh"],
  ["Escape", "Close dialogs; leave an open subgraph", "escape"],
  ["Space+drag", "Pan the canvas", null],
  ["Double-click", "Search nodes to add; on a subgraph's title, open it", null],
  ["Alt+click on a link", "Add a reroute point (drag it, Delete removes it)", null],
  ["Wheel", "Zoom at the cursor", null],
  ["Pinch", "Zoom at the fingers (trackpad or touch)", null],
];

export function comboOf(event) {
  const parts = [];
  if (event.ctrlKey || event.metaKey) parts.push("Ctrl");
  if (event.altKey) parts.push("Alt");
  if (event.shiftKey) parts.push("Shift");
  let key = event.key;
  if (key.length === 1) key = key.toUpperCase();
  if (event.code === "KeyC" && event.altKey) key = "C";
  if (key === "Del") key = "Delete";
  parts.push(key === " " ? "Space" : key);
  return parts.join("+");
}

/** Route key presses to `actions[name]()`; returns the listener for removal. */
export function bindShortcuts(actions, target = window) {
  const table = new Map(SHORTCUTS.filter(([, , name]) => name).map(([combo, , name]) => [combo, name]));
  const listener = (event) => {
    if (isTyping(event) && event.key !== "Escape") return;
    const name = table.get(comboOf(event));
    if (!name || !actions[name]) return;
    event.preventDefault();
    actions[name]();
  };
  target.addEventListener("keydown", listener);
  return listener;
}
