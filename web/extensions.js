/**
 * A minimal ComfyUI-style extension host (comfy-compat §7.3): the URLs from GET /extensions
 * are imported as ES modules; they call `app.registerExtension({name, init, setup,
 * beforeRegisterNodeDef, nodeCreated, loadedGraphNode})`. Node types are classes whose
 * prototype extensions may patch (e.g. `onExecuted`, `onNodeCreated`); Kiln calls those
 * hooks with a lightweight node object whose `title` changes are written back to the graph.
 */

export class ExtensionHost {
  constructor(app) {
    this.app = app;
    this.extensions = [];
    this.nodeTypes = new Map();
    this.errors = [];
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

  /** Import every extension module, then run `init`, `beforeRegisterNodeDef` per type, `setup`. */
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
    await this.registerNodeTypes(objectInfo);
    await this.call("setup", this.app.compat);
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
  nodeObject(editor, node) {
    const NodeType = this.nodeTypes.get(node.type);
    if (!NodeType) return null;
    const values = editor.graph.widgetValues(node);
    return new NodeType({
      id: node.jsonId, type: node.type, comfyClass: node.type, title: node.title ?? editor.graph.def(node)?.displayName ?? node.type,
      widgets: editor.graph.widgets(node).map((widget, index) => ({ name: widget.name, value: values[index] })), properties: { ...node.properties },
    });
  }

  nodeCreated(editor, nodeId) {
    const node = editor.graph.node(nodeId);
    const object = node && this.nodeObject(editor, node);
    if (!object) return;
    object.onNodeCreated?.();
    this.call("nodeCreated", object, this.app.compat);
  }

  nodeExecuted(editor, nodeId, output) {
    const node = editor.graph.node(nodeId);
    const object = node && this.nodeObject(editor, node);
    if (!object?.onExecuted) return;
    const before = object.title;
    try {
      object.onExecuted(output ?? {});
    } catch (error) {
      this.errors.push(`onExecuted of ${node.type}: ${error.message}`);
    }
    if (object.title !== before) editor.graph.updateNode(nodeId, { title: object.title });
  }
}
