/**
 * The Kiln editor application: wires the server client, node definitions, tabs of open
 * workflows, the canvas (renderer, pointer, keys), the DOM panels, execution and files.
 * One instance per page; it owns every piece and hands each what it needs.
 */
import { ApiClient } from "./api/client.js";
import { Editor } from "./editor.js";
import { Execution } from "./execution.js";
import { ExtensionHost } from "./extensions.js";
import { WorkflowFiles } from "./files.js";
import * as commands from "./interaction/commands.js";
import { hitTest } from "./interaction/hittest.js";
import { bindShortcuts } from "./interaction/keys.js";
import { PointerController, selectedNodeIds } from "./interaction/pointer.js";
import { parseObjectInfo } from "./model/nodedefs.js";
import { Breadcrumb } from "./panels/breadcrumb.js";
import { canvasUi } from "./panels/canvas_ui.js";
import { h } from "./panels/dom.js";
import { helpBody } from "./panels/help.js";
import { LibraryPanel } from "./panels/library.js";
import { Overlays } from "./panels/overlays.js";
import { QueuePanel } from "./panels/queue.js";
import { NodeSearch } from "./panels/search.js";
import { Settings } from "./panels/settings.js";
import { minimumSize, REROUTE_SIZE } from "./view/layout.js";
import { Minimap } from "./view/minimap.js";
import { Renderer } from "./view/renderer.js";
import { THEMES } from "./view/theme.js";

const TABS_KEY = "kiln.tabs";
const SAVE_DELAY_MS = 400;

export class KilnApp {
  constructor(root) {
    this.root = root;
    this.api = new ApiClient(location.origin);
    this.settings = new Settings(this.api);
    this.objectInfo = {};
    this.defs = new Map();
    this.editors = [];
    this.activeIndex = 0;
    this.lastPrompt = null;
    this.imageCache = new Map();
    this.saveTimer = null;
    this.extensions = new ExtensionHost(this);
    this.compat = this.#compatApp();
  }

  get editor() {
    return this.editors[this.activeIndex];
  }

  get theme() {
    return THEMES[this.settings.get("Kiln.Theme")] ?? THEMES.dark;
  }

  // ---- start-up --------------------------------------------------------------------------

  async start() {
    this.#buildShell();
    await this.settings.loadFromServer();
    await this.refreshDefs();
    this.execution = new Execution(this);
    this.files = new WorkflowFiles(this);
    this.renderer = new Renderer(this.canvas, () => this.scene());
    this.renderer.onAfterDraw = (scene, width, height) => {
      if (this.settings.get("Kiln.ShowMinimap")) this.minimap.draw(width, height, scene.theme);
    };
    this.minimap = new Minimap(this.minimapCanvas, () => this.editor, (point) => this.centerOn(point));
    this.pointer = new PointerController(this.canvas, this);
    bindShortcuts(this.#shortcutActions());
    this.#bindDrops();
    new ResizeObserver(() => this.renderer.resize()).observe(this.canvas);
    await this.#restoreTabs();
    this.applySettings();
    this.renderer.resize();
    this.renderer.start();
    this.api.connect();
    this.api.addEventListener("reconnected", () => this.setConnection(true));
    this.api.addEventListener("disconnected", () => this.setConnection(false));
    try {
      await this.extensions.load(await this.api.extensions(), this.objectInfo);
    } catch (error) {
      console.error("extensions", error);
    }
    this.queuePanel.refresh();
    this.ready = true;
  }

  async refreshDefs() {
    this.objectInfo = await this.api.objectInfo();
    this.reparseDefs();
  }

  /** Node definitions from the last `/object_info`, with the widgets extensions registered. */
  reparseDefs() {
    const parsed = parseObjectInfo(this.objectInfo, { customWidget: (node, input, spec) => this.extensions.customWidget(node, input, spec) });
    this.defs.clear();
    for (const [name, def] of parsed) this.defs.set(name, def);
    for (const editor of this.editors) editor.rootGraph.defs = this.defs;
    this.library?.render();
    this.markDirty();
  }

  scene() {
    const editor = this.editor;
    return { graph: editor?.graph, camera: editor?.camera, selection: editor?.selection ?? new Set(), status: editor?.viewStatus ?? new Map(), interaction: editor?.interaction ?? {}, theme: this.theme };
  }

  markDirty() {
    this.renderer?.markDirty();
  }

  // ---- the page --------------------------------------------------------------------------

  #buildShell() {
    this.overlays = new Overlays(this.root);
    this.search = new NodeSearch(this.root, () => this.defs);
    this.batchInput = h("input", { type: "number", min: 1, max: 100, value: 1, class: "batch", title: "Batch count", "data-testid": "batch-count" });
    this.queueSize = h("span", { class: "queue-size", "data-testid": "queue-size" }, "0");
    this.connection = h("span", { class: "connection offline", title: "server connection" }, "●");
    this.tabBar = h("div", { class: "tabs", "data-testid": "tabs" });
    const button = (label, action, extra = {}) => h("button", { onclick: action, ...extra }, label);
    const menu = (label, items) => button(label, (event) => {
      const rect = event.currentTarget.getBoundingClientRect();
      this.overlays.menu(items(), [rect.left, rect.bottom]);
    });
    const bar = h("header", { class: "menubar" },
      h("span", { class: "logo" }, "Kiln"),
      menu("Workflow ▾", () => [
        { label: "New", action: () => this.newTab() },
        { label: "Open… (Ctrl+O)", action: () => this.files.open() },
        { label: "Save (Ctrl+S)", action: () => this.files.save() },
        { label: "Export (API format)", action: () => this.files.exportApi() },
        null,
        { label: "Clear canvas", action: () => this.clearCanvas() },
      ]),
      button("Templates ▾", (event) => this.openTemplatesMenu(event.currentTarget)),
      menu("Edit ▾", () => [
        { label: "Undo (Ctrl+Z)", action: () => this.undo() },
        { label: "Redo (Ctrl+Y)", action: () => this.redo() },
        { label: "Fit view (.)", action: () => this.fitView() },
        { label: "Refresh node lists", action: () => this.refreshDefs() },
      ]),
      button("Settings", () => this.overlays.dialog("Settings", this.settings.body(() => this.applySettings()))),
      button("Help", () => this.overlays.dialog("Keyboard shortcuts", helpBody())),
      this.tabBar,
      h("span", { class: "spacer" }),
      this.connection,
      h("span", { class: "queue-label" }, "Queue: ", this.queueSize),
      this.batchInput,
      button("Queue", () => this.queue(), { class: "primary", "data-testid": "queue-button", title: "Ctrl+Enter" }),
      button("Queue front", () => this.queue(true), { title: "Ctrl+Shift+Enter" }),
      button("Interrupt", () => this.api.interrupt(), { "data-testid": "interrupt-button" }),
      button("Queue panel", () => this.toggleSide(this.queueElement)));
    this.canvas = h("canvas", { class: "graph-canvas", tabindex: "0", "data-testid": "graph-canvas" });
    this.minimapCanvas = h("canvas", { class: "minimap", width: 200, height: 140 });
    this.libraryElement = h("aside", { class: "side library", "data-testid": "library" });
    this.queueElement = h("aside", { class: "side queue hidden", "data-testid": "queue-panel" });
    this.breadcrumb = new Breadcrumb((depth) => this.exitSubgraph(depth));
    const main = h("main", { class: "workspace" }, this.libraryElement, h("div", { class: "canvas-wrap" }, this.canvas, this.breadcrumb.element, this.minimapCanvas), this.queueElement);
    this.root.replaceChildren(bar, main);
    this.library = new LibraryPanel(this.libraryElement, this);
    this.queuePanel = new QueuePanel(this.queueElement, this);
    this.ui = canvasUi(this);
  }

  toggleSide(element) {
    element.classList.toggle("hidden");
    if (element === this.queueElement && !element.classList.contains("hidden")) this.queuePanel.refresh();
    this.renderer.resize();
  }

  applySettings() {
    document.documentElement.dataset.theme = this.theme.name;
    this.minimapCanvas.classList.toggle("hidden", !this.settings.get("Kiln.ShowMinimap"));
    this.libraryElement.classList.toggle("hidden", !this.settings.get("Kiln.ShowLibrary"));
    this.renderer?.resize();
  }

  setConnection(online) {
    this.connection.classList.toggle("offline", !online);
  }

  #shortcutActions() {
    const editorAction = (fn) => () => {
      fn(this.editor);
      this.markDirty();
    };
    return {
      queue: () => this.queue(false),
      queueFront: () => this.queue(true),
      save: () => this.files.save(),
      open: () => this.files.open(),
      undo: () => this.undo(),
      redo: () => this.redo(),
      copy: editorAction((editor) => commands.copySelection(editor)),
      paste: editorAction((editor) => commands.pasteClipboard(editor, this.pointer.lastGraphPoint)),
      pasteWithLinks: editorAction((editor) => commands.pasteClipboard(editor, this.pointer.lastGraphPoint, { keepInputLinks: true })),
      duplicate: editorAction(commands.duplicateSelection),
      selectAll: editorAction(commands.selectAll),
      mute: editorAction(commands.toggleMute),
      bypass: editorAction(commands.toggleBypass),
      collapse: editorAction(commands.toggleCollapse),
      pin: editorAction(commands.togglePin),
      group: editorAction((editor) => commands.groupSelection(editor)),
      delete: editorAction(commands.deleteSelection),
      fit: () => this.fitView(),
      refresh: () => this.refreshDefs().then(() => this.overlays.toast("Node definitions refreshed", "info", 1500)),
      escape: () => {
        if (!this.ui.closeTransient() && this.editor.depth > 0) this.exitSubgraph();
      },
    };
  }

  #bindDrops() {
    const wrap = this.canvas.parentElement;
    wrap.addEventListener("dragover", (event) => event.preventDefault());
    wrap.addEventListener("drop", async (event) => {
      event.preventDefault();
      const rect = this.canvas.getBoundingClientRect();
      const point = this.editor.camera.screenToGraph([event.clientX - rect.left, event.clientY - rect.top]);
      const hit = hitTest(this.editor, point);
      await this.files.drop(event.dataTransfer, point, hit.node);
      this.markDirty();
    });
  }

  // ---- graph editing helpers ---------------------------------------------------------------

  /** Add a node of `type` at graph point `pos` (one undo step unless `group: false`). */
  addNode(type, pos, { group = true } = {}) {
    const editor = this.editor;
    const graph = editor.graph;
    const create = () => {
      const id = graph.addNode(type, pos);
      const node = graph.node(id);
      const size = type === "Reroute" ? [...REROUTE_SIZE] : minimumSize(graph, node, graph.widgets(node).some((widget) => widget.kind === "UPLOAD"));
      graph.updateNode(id, { size });
      return id;
    };
    const id = group ? graph.history.group(create) : create();
    commands.selectNodes(editor, [id]);
    this.extensions.nodeCreated(editor, id);
    this.markDirty();
    return id;
  }

  addNodeAtCenter(type) {
    const { width, height } = this.canvas.getBoundingClientRect();
    const [x, y] = this.editor.camera.screenToGraph([width / 2 - 100, height / 2 - 60]);
    return this.addNode(type, [x, y]);
  }

  undo() {
    this.editor.graph.history.undo();
    this.markDirty();
  }

  redo() {
    this.editor.graph.history.redo();
    this.markDirty();
  }

  clearCanvas() {
    const editor = this.editor;
    editor.graph.history.group(() => {
      editor.graph.removeNodes(editor.graph.nodes().map((node) => node.jsonId));
      editor.graph.removeGroups(editor.graph.groups().map((group) => group.id));
    });
    this.markDirty();
  }

  /** Show the inside of subgraph instance `nodeId` (of the shown level). */
  openSubgraph(nodeId) {
    const editor = this.editor;
    if (!editor.enterSubgraph(nodeId)) return false;
    this.ui.closeTransient();
    if (editor.level.fresh) {
      editor.level.fresh = false;
      this.fitView();
    }
    this.breadcrumb.show(editor);
    this.markDirty();
    return true;
  }

  /** Go back to level `depth` of the tab (0: the workflow); one level up by default. */
  exitSubgraph(depth) {
    const editor = this.editor;
    if (!editor.exitTo(depth)) return false;
    this.breadcrumb.show(editor);
    this.markDirty();
    return true;
  }

  fitView() {
    const { width, height } = this.canvas.getBoundingClientRect();
    commands.fitView(this.editor, width, height);
    this.markDirty();
    this.tabsChanged();
  }

  centerOn([x, y]) {
    const { width, height } = this.canvas.getBoundingClientRect();
    const camera = this.editor.camera;
    camera.offset = [width / 2 / camera.scale - x, height / 2 / camera.scale - y];
    this.markDirty();
  }

  queue(front = false) {
    const count = Math.max(1, Math.min(100, Number(this.batchInput.value) || 1));
    return this.execution.queue({ front, count });
  }

  /** Upload an image file for a LoadImage-like node and select it in the node's combo. */
  async uploadToNode(nodeId, file) {
    try {
      const result = await this.api.uploadImage(file);
      const name = result.subfolder ? `${result.subfolder}/${result.name}` : result.name;
      const graph = this.editor.graph;
      const node = graph.node(nodeId);
      const widgets = graph.widgets(node);
      const index = widgets.findIndex((widget) => widget.kind === "COMBO" && (widget.options.image_upload || widget.options.upload));
      if (index < 0) return;
      const values = widgets[index].options.values;
      if (!values.includes(name)) values.push(name);
      graph.history.group(() => graph.setWidgetValue(nodeId, index, name));
      this.showInputThumbnail(this.editor, nodeId, name);
    } catch (error) {
      this.overlays.toast(`Upload failed: ${error.message}`, "error");
    }
  }

  showInputThumbnail(editor, nodeId, name) {
    if (!name) return;
    const status = editor.nodeStatus(nodeId);
    const [subfolder, filename] = name.includes("/") ? [name.slice(0, name.lastIndexOf("/")), name.slice(name.lastIndexOf("/") + 1)] : ["", name];
    status.images = [this.loadImage(this.api.viewUrl({ filename, subfolder, type: "input" }))];
    status.imageIndex = 0;
    this.markDirty();
  }

  /** Thumbnails for every upload node of a freshly opened tab. */
  showUploadThumbnails(editor) {
    for (const node of editor.graph.nodes()) {
      const widgets = editor.graph.widgets(node);
      const index = widgets.findIndex((widget) => widget.kind === "COMBO" && widget.options.image_upload);
      if (index >= 0) this.showInputThumbnail(editor, node.jsonId, editor.graph.widgetValues(node)[index]);
    }
  }

  loadImage(src) {
    const image = new Image();
    image.onload = () => this.markDirty();
    image.src = src;
    return image;
  }

  // ---- tabs --------------------------------------------------------------------------------

  newTab(name = "Unsaved Workflow") {
    const editor = new Editor(this.defs, { name });
    let shownModified = false;
    editor.rootGraph.store.listen(() => {
      if (editor.modified !== shownModified) {
        shownModified = editor.modified;
        this.tabsChanged();
      }
      this.scheduleSave();
      this.markDirty();
    });
    this.editors.push(editor);
    this.activeIndex = this.editors.length - 1;
    this.tabsChanged();
    this.markDirty();
    return editor;
  }

  /** Open a UI workflow in a new tab (or the current one when it is empty and unmodified). */
  openWorkflow(workflow, name = "Workflow", path = null) {
    const current = this.editor;
    const reuse = current && !current.modified && current.graph.nodes().length === 0;
    const editor = reuse ? current : this.newTab(name);
    try {
      editor.load(workflow);
    } catch (error) {
      this.overlays.toast(`Cannot open ${name}: ${error.message}`, "error");
      return null;
    }
    editor.name = name;
    editor.path = path;
    if (!workflow.extra?.ds) this.fitView();
    this.showUploadThumbnails(editor);
    this.breadcrumb.show(editor);
    const missing = [...new Set(editor.graph.nodes().filter((node) => !this.defs.has(node.type) && !editor.graph.isSubgraphType(node.type)).map((node) => node.type))];
    if (missing.length) this.overlays.toast(`Unknown node types (shown in red): ${missing.join(", ")}`, "error", 8000);
    this.tabsChanged();
    this.markDirty();
    return editor;
  }

  activate(index) {
    this.activeIndex = Math.max(0, Math.min(index, this.editors.length - 1));
    this.ui.closeTransient();
    this.breadcrumb.show(this.editor);
    this.tabsChanged();
    this.markDirty();
  }

  closeTab(index) {
    this.editors.splice(index, 1);
    if (!this.editors.length) this.newTab();
    this.activate(Math.min(this.activeIndex, this.editors.length - 1));
  }

  tabsChanged() {
    this.tabBar?.replaceChildren(...this.editors.map((editor, index) => h("span", {
      class: `tab${index === this.activeIndex ? " active" : ""}`, onclick: () => this.activate(index),
    }, `${editor.name}${editor.modified ? " •" : ""}`, h("button", {
      class: "close", title: "Close tab",
      onclick: (event) => {
        event.stopPropagation();
        this.closeTab(index);
      },
    }, "×"))));
    this.scheduleSave();
  }

  onViewChanged() {
    this.scheduleSave();
  }

  /** Open workflows survive a reload: every tab's workflow goes to localStorage, debounced. */
  scheduleSave() {
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => this.saveTabs(), SAVE_DELAY_MS);
  }

  saveTabs() {
    const tabs = this.editors.map((editor) => ({ name: editor.name, path: editor.path, workflow: editor.serialize() }));
    try {
      localStorage.setItem(TABS_KEY, JSON.stringify({ active: this.activeIndex, tabs }));
    } catch (error) {
      console.warn("cannot keep the open workflows in localStorage", error);
    }
  }

  async #restoreTabs() {
    const saved = JSON.parse(localStorage.getItem(TABS_KEY) ?? "null");
    if (saved?.tabs?.length) {
      for (const tab of saved.tabs) {
        const editor = this.newTab(tab.name);
        editor.load(tab.workflow);
        editor.path = tab.path;
        this.showUploadThumbnails(editor);
      }
      this.activate(saved.active ?? 0);
      return;
    }
    this.newTab();
    try {
      this.openWorkflow(await this.api.template("default"), "default");
      this.fitView();
    } catch (error) {
      this.overlays.toast(`No default workflow: ${error.message}`, "error");
    }
  }

  async openTemplatesMenu(anchor) {
    const rect = anchor.getBoundingClientRect();
    let names = {};
    try {
      names = await this.api.templates();
    } catch (error) {
      this.overlays.toast(`Cannot list templates: ${error.message}`, "error");
    }
    const items = (names.kiln ?? []).map((name) => ({
      label: name,
      action: async () => this.openWorkflow(await this.api.template(name), name),
    }));
    this.overlays.menu(items.length ? items : [{ label: "No templates", disabled: true, action: () => {} }], [rect.left, rect.bottom]);
  }

  // ---- ComfyUI-style app object for extensions -----------------------------------------------

  #compatApp() {
    const app = this;
    return {
      registerExtension: (extension) => app.extensions.registerExtension(extension),
      get api() { return app.api; },
      get graph() { return app.editor?.graph; },
      queuePrompt: (front = false) => app.queue(front),
      kiln: app,
    };
  }

  selectedNodeIds() {
    return selectedNodeIds(this.editor);
  }
}
