/**
 * A minimal ComfyUI-style extension host (comfy-compat §7.3): the URLs from GET /extensions
 * are imported as ES modules; they call `app.registerExtension({name, init, setup,
 * getCustomWidgets, beforeRegisterNodeDef, nodeCreated, loadedGraphNode})`. Node types are
 * classes whose prototype extensions may patch (e.g. `onExecuted`, `onNodeCreated`); Kiln
 * calls those hooks with a lightweight node object whose `title` changes are written back to
 * the graph.
 *
 * `getCustomWidgets(app)` returns `{TYPE: (node, inputName, inputData, app) => ({widget})}`:
 * every input of type TYPE then gets the widget that function makes (with `node.addWidget`,
 * `node.addCustomWidget`, or as a plain object). Kiln calls the function once per node type
 * and input, with a stand-in node, and keeps the widget: its `value` is the default, its
 * `options.values` (if any) a list to pick from, and its `draw(ctx, node, width, y, height)`
 * and `mouse(event, pos, node)`, when present, draw it and handle clicks (litegraph's widget
 * callbacks, `pos` relative to the node).
 */

export class ExtensionHost {
  constructor(app) {
    this.app = app;
    this.extensions = [];
    this.nodeTypes = new Map();
    this.errors = [];
    /** widget type -> the extension's factory `(node, inputName, inputData, app) => ({widget})` */
    this.customWidgets = new Map();
  }

  registerExtension(extension) {
    if (!extension?.name) throw new Error("an extension needs a name");
    this.extensions.push(extension);
  }

  async call(hook, ...args) {
    for (const extension of this.extensions) {
      if (typeof extension[hook] !== "function") continue;
      try {
        await extension[hook](...args);
      } catch (error) {
        this.errors.push(`${extension.name}.${hook}: ${error.message}`);
        console.error(`extension ${extension.name} failed in ${hook}`, error);
      }
    }
  }

  /**
   * Import every extension module, then run `init`, collect `getCustomWidgets` (and give the
   * editor's node definitions those widgets), `beforeRegisterNodeDef` per type, `setup`.
   */
  async load(urls, objectInfo) {
    for (const url of urls) {
      try {
        await import(new URL(url, location.origin).href);
      } catch (error) {
        this.errors.push(`${url}: ${error.message}`);
        console.error(`cannot load extension ${url}`, error);
      }
    }
    await this.call("init", this.app.compat);
    await this.collectCustomWidgets();
    if (this.customWidgets.size) this.app.reparseDefs();
    await this.registerNodeTypes(objectInfo);
    await this.call("setup", this.app.compat);
  }

  async collectCustomWidgets() {
    for (const extension of this.extensions) {
      if (typeof extension.getCustomWidgets !== "function") continue;
      try {
        const factories = await extension.getCustomWidgets(this.app.compat);
        for (const [type, factory] of Object.entries(factories ?? {})) {
          if (typeof factory === "function") this.customWidgets.set(type, factory);
        }
      } catch (error) {
        this.errors.push(`${extension.name}.getCustomWidgets: ${error.message}`);
        console.error(`extension ${extension.name} failed in getCustomWidgets`, error);
      }
    }
  }

  /**
   * The widget an extension makes for input `inputName` (raw spec `spec`) of node type
   * `nodeName`, or null when no extension registered the input's type.
   */
  customWidget(nodeName, inputName, spec) {
    const type = Array.isArray(spec) ? spec[0] : spec;
    const factory = typeof type === "string" ? this.customWidgets.get(type) : undefined;
    if (!factory) return null;
    const node = standInNode(nodeName);
    try {
      const made = factory(node, inputName, Array.isArray(spec) ? spec : [spec, {}], this.app.compat);
      const widget = made?.widget ?? node.widgets.find((candidate) => candidate.name === inputName) ?? node.widgets[0];
      if (!widget) return null;
      widget.name ??= inputName;
      widget.options ??= {};
      return widget;
    } catch (error) {
      this.errors.push(`custom widget ${type} of ${nodeName}.${inputName}: ${error.message}`);
      console.error(`custom widget ${type} failed`, error);
      return null;
    }
  }

  async registerNodeTypes(objectInfo) {
    for (const [name, nodeData] of Object.entries(objectInfo)) {
      const nodeType = class {
        constructor(fields) {
          Object.assign(this, fields);
        }
      };
      Object.defineProperty(nodeType, "name", { value: name });
      nodeType.comfyClass = name;
      this.nodeTypes.set(name, nodeType);
      await this.call("beforeRegisterNodeDef", nodeType, nodeData, this.app.compat);
    }
  }

  /** A node object for extension hooks, bound to its type's (possibly patched) prototype. */
  nodeObject(graph, node) {
    const NodeType = this.nodeTypes.get(node.type);
    if (!NodeType) return null;
    const values = graph.widgetValues(node);
    return new NodeType({
      id: node.jsonId, type: node.type, comfyClass: node.type, title: node.title ?? graph.def(node)?.displayName ?? node.type,
      widgets: graph.widgets(node).map((widget, index) => ({ name: widget.name, value: values[index] })), properties: { ...node.properties },
    });
  }

  nodeCreated(editor, nodeId) {
    const node = editor.graph.node(nodeId);
    const object = node && this.nodeObject(editor.graph, node);
    if (!object) return;
    object.onNodeCreated?.();
    this.call("nodeCreated", object, this.app.compat);
  }

  nodeExecuted(editor, nodeId, output) {
    const node = editor.rootGraph.node(nodeId);
    const object = node && this.nodeObject(editor.rootGraph, node);
    if (!object?.onExecuted) return;
    const before = object.title;
    try {
      object.onExecuted(output ?? {});
    } catch (error) {
      this.errors.push(`onExecuted of ${node.type}: ${error.message}`);
    }
    if (object.title !== before) editor.rootGraph.updateNode(nodeId, { title: object.title });
  }
}

/** The node a custom widget factory is given: litegraph's `addWidget` and `addCustomWidget`, recording. */
function standInNode(type) {
  return {
    type, comfyClass: type, widgets: [], properties: {}, size: [240, 100],
    addWidget(widgetType, name, value, callback, options) {
      const widget = { type: widgetType, name, value, callback, options: typeof options === "object" && options ? options : {} };
      this.widgets.push(widget);
      return widget;
    },
    addCustomWidget(widget) {
      this.widgets.push(widget);
      return widget;
    },
  };
}
