/**
 * Editing commands on the active tab's selection, each one undo step: delete, duplicate,
 * copy/paste (Ctrl+Shift+V keeps input links), mute, bypass, collapse, pin, select all, group
 * selection, fit view. Shared by the keyboard, the context menu and the menu bar.
 */
import { MODE } from "../model/graph.js";
import { addReroute, removeReroutes } from "../model/reroutes.js";
import { nodeBounds } from "../view/layout.js";
import { selectedNodeIds, selectedRerouteIds } from "./pointer.js";

const CLIPBOARD_KEY = "kiln.clipboard";
const PASTE_OFFSET = 30;

export function deleteSelection(editor) {
  const { graph } = editor;
  graph.history.group(() => {
    removeReroutes(graph, selectedRerouteIds(editor));
    graph.removeNodes(selectedNodeIds(editor));
    graph.removeGroups([...editor.selection].filter((id) => id.startsWith("group:")));
  });
  editor.selection.clear();
}

/** A native reroute on segment `segment` of link `linkId` at graph point `at`, selected. */
export function addRerouteOnLink(editor, linkId, segment, at) {
  const id = editor.graph.history.group(() => addReroute(editor.graph, linkId, segment, at));
  editor.selection.clear();
  editor.selection.add(`reroute:${id}`);
  return id;
}

export function deleteLink(editor, linkId) {
  editor.graph.history.group(() => editor.graph.removeLink(linkId));
}

export function copySelection(editor, storage = localStorage) {
  const ids = selectedNodeIds(editor);
  if (!ids.length) return null;
  const clipboard = editor.graph.copy(ids);
  storage.setItem(CLIPBOARD_KEY, JSON.stringify(clipboard));
  return clipboard;
}

/** Paste the clipboard at graph point `at` (or next to the copied nodes); selects the new nodes. */
export function pasteClipboard(editor, at, { keepInputLinks = false, storage = localStorage } = {}) {
  const text = storage.getItem(CLIPBOARD_KEY);
  if (!text) return [];
  const clipboard = JSON.parse(text);
  const origin = at ?? [Math.min(...clipboard.nodes.map((node) => node.pos[0])) + PASTE_OFFSET, Math.min(...clipboard.nodes.map((node) => node.pos[1])) + PASTE_OFFSET];
  const ids = editor.graph.history.group(() => editor.graph.paste(clipboard, origin, { keepInputLinks }));
  selectNodes(editor, ids);
  return ids;
}

export function duplicateSelection(editor) {
  const ids = selectedNodeIds(editor);
  if (!ids.length) return [];
  const clipboard = editor.graph.copy(ids);
  const nodes = clipboard.nodes;
  const at = [Math.min(...nodes.map((node) => node.pos[0])) + PASTE_OFFSET, Math.min(...nodes.map((node) => node.pos[1])) + PASTE_OFFSET];
  const newIds = editor.graph.history.group(() => editor.graph.paste(clipboard, at));
  selectNodes(editor, newIds);
  return newIds;
}

export function selectNodes(editor, nodeIds) {
  editor.selection.clear();
  for (const id of nodeIds) editor.selection.add(`node:${id}`);
}

export function selectAll(editor) {
  selectNodes(editor, editor.graph.nodes().map((node) => node.jsonId));
}

export function toggleMute(editor) {
  editor.graph.history.group(() => editor.graph.toggleMode(selectedNodeIds(editor), MODE.NEVER));
}

export function toggleBypass(editor) {
  editor.graph.history.group(() => editor.graph.toggleMode(selectedNodeIds(editor), MODE.BYPASS));
}

export function toggleCollapse(editor) {
  editor.graph.history.group(() => editor.graph.toggleCollapsed(selectedNodeIds(editor)));
}

export function togglePin(editor) {
  editor.graph.history.group(() => editor.graph.togglePinned(selectedNodeIds(editor)));
}

const GROUP_PADDING = 20;
const GROUP_TITLE_H = 34;

/** A group around the selected nodes; none when nothing is selected. */
export function groupSelection(editor) {
  const bounds = selectedNodeIds(editor).map((id) => nodeBounds(editor.graph.node(id)));
  if (!bounds.length) return null;
  const x = Math.min(...bounds.map((b) => b[0])) - GROUP_PADDING;
  const y = Math.min(...bounds.map((b) => b[1])) - GROUP_PADDING - GROUP_TITLE_H;
  const w = Math.max(...bounds.map((b) => b[0] + b[2])) + GROUP_PADDING - x;
  const h = Math.max(...bounds.map((b) => b[1] + b[3])) + GROUP_PADDING - y;
  return editor.graph.history.group(() => editor.graph.addGroup([x, y, w, h]));
}

/** An empty group with its top-left corner at graph point `at`. */
export function addEmptyGroup(editor, at) {
  return editor.graph.history.group(() => editor.graph.addGroup([at[0], at[1], 400, 300]));
}

/** The bounding box of every node and group, or null for an empty graph. */
export function graphBounds(graph) {
  const boxes = [...graph.nodes().map(nodeBounds), ...graph.groups().map((group) => group.bounding)];
  if (!boxes.length) return null;
  const x = Math.min(...boxes.map((b) => b[0]));
  const y = Math.min(...boxes.map((b) => b[1]));
  return [x, y, Math.max(...boxes.map((b) => b[0] + b[2])) - x, Math.max(...boxes.map((b) => b[1] + b[3])) - y];
}

export function fitView(editor, width, height) {
  const bounds = graphBounds(editor.graph);
  if (bounds) editor.camera.fit(bounds, width, height);
}
