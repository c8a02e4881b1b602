/**
 * The DOM pieces the canvas interaction layer asks for (see interaction/pointer.js): the
 * node search, text and list editors over widgets, file picking, renaming, and the
 * right-click context menu. Coordinates arrive relative to the canvas and are turned into
 * page coordinates here.
 */
import * as commands from "../interaction/commands.js";
import { isPinned, MODE } from "../model/graph.js";

export function canvasUi(app) {
  const pageCoords = ([x, y]) => {
    const rect = app.canvas.getBoundingClientRect();
    return [x + rect.left, y + rect.top];
  };
  const pageRect = (rect) => {
    const [x, y] = pageCoords([rect.x, rect.y]);
    return { ...rect, x, y };
  };
  const ui = {
    /** Close menus, editors and the search; whether anything was open. */
    closeTransient: () => {
      const open = app.overlays.transient.length > 0 || Boolean(app.search.element);
      app.overlays.closeTransient();
      app.search.close();
      return open;
    },
    openSearch: ({ screen, graphPos, filter, onPick }) => app.search.open({
      screen: pageCoords(screen), filter,
      onChoose: (def) => {
        app.editor.graph.history.group(() => {
          const id = app.addNode(def.name, graphPos, { group: false });
          onPick?.(id);
        });
        app.markDirty();
      },
    }),
    editText: (options) => app.overlays.editText({ ...options, rect: pageRect(options.rect), onCommit: (value) => { options.onCommit(value); app.markDirty(); } }),
    chooseFromList: (options) => app.overlays.chooseFromList({ ...options, rect: pageRect(options.rect), onPick: (value) => { options.onPick(value); app.markDirty(); } }),
    pickImageFile: (onFile) => app.overlays.pickFile("image/*", onFile),
    contextMenu: (hit, screen, point) => app.overlays.menu(contextItems(app, hit, point), pageCoords(screen)),
    renameNode: (node, screen) => app.overlays.editText({
      rect: { ...pageRect({ x: screen[0] - 60, y: screen[1] - 12, w: 200, h: 24 }) }, value: node.title ?? app.defs.get(node.type)?.displayName ?? node.type,
      onCommit: (title) => { app.editor.graph.history.group(() => app.editor.graph.updateNode(node.jsonId, { title })); app.markDirty(); },
    }),
    renameGroup: (group, screen) => app.overlays.editText({
      rect: pageRect({ x: screen[0] - 60, y: screen[1] - 12, w: 200, h: 24 }), value: group.title,
      onCommit: (title) => { app.editor.graph.history.group(() => app.editor.graph.updateGroup(group.id, { title })); app.markDirty(); },
    }),
    setQueueSize: (size) => { app.queueSize.textContent = String(size); },
  };
  return ui;
}

/** Items of the canvas context menu for what was right-clicked. */
function contextItems(app, hit, point) {
  const editor = app.editor;
  const act = (fn) => () => { fn(); app.markDirty(); };
  if (hit.kind === "link") {
    return [
      { label: "Add reroute", action: act(() => commands.addRerouteOnLink(editor, hit.link.jsonId, hit.segment, point)) },
      { label: "Delete link", action: act(() => commands.deleteLink(editor, hit.link.jsonId)) },
    ];
  }
  if (hit.kind === "reroute") {
    return [{ label: "Delete reroute (Del)", action: act(() => commands.deleteSelection(editor)) }];
  }
  if (hit.node) {
    const subgraph = editor.graph.isSubgraphType(hit.node.type)
      ? [{ label: "Open subgraph", action: () => app.openSubgraph(hit.node.jsonId) }, null] : [];
    return [
      ...subgraph,
      { label: "Duplicate (Ctrl+D)", action: act(() => commands.duplicateSelection(editor)) },
      { label: "Copy (Ctrl+C)", action: act(() => commands.copySelection(editor)) },
      { label: hit.node.flags?.collapsed ? "Expand (Alt+C)" : "Collapse (Alt+C)", action: act(() => commands.toggleCollapse(editor)) },
      { label: isPinned(hit.node) ? "Unpin (P)" : "Pin (P)", action: act(() => commands.togglePin(editor)) },
      { label: hit.node.mode === MODE.NEVER ? "Unmute (Ctrl+M)" : "Mute (Ctrl+M)", action: act(() => commands.toggleMute(editor)) },
      { label: hit.node.mode === MODE.BYPASS ? "Remove bypass (Ctrl+B)" : "Bypass (Ctrl+B)", action: act(() => commands.toggleBypass(editor)) },
      { label: "Group selected (Ctrl+G)", action: act(() => commands.groupSelection(editor)) },
      { label: "Rename", action: () => app.ui.renameNode(hit.node, editor.camera.graphToScreen(point)) },
      null,
      { label: "Delete (Del)", action: act(() => commands.deleteSelection(editor)) },
    ];
  }
  if (hit.group) {
    return [
      { label: "Rename group", action: () => app.ui.renameGroup(hit.group, editor.camera.graphToScreen(point)) },
      { label: "Remove group", action: act(() => editor.graph.history.group(() => editor.graph.removeGroups([hit.group.id]))) },
    ];
  }
  return [
    { label: "Add node…", action: () => app.ui.openSearch({ screen: editor.camera.graphToScreen(point), graphPos: point, filter: {} }) },
    { label: "Add reroute", action: act(() => app.addNode("Reroute", point)) },
    { label: "Add note", action: act(() => app.addNode("Note", point)) },
    { label: "Add group", action: act(() => commands.addEmptyGroup(editor, point)) },
    { label: "Paste (Ctrl+V)", action: act(() => commands.pasteClipboard(editor, point)) },
    { label: "Fit view (.)", action: () => app.fitView() },
  ];
}
