/**
 * The editor's graph document: a `Store` of workflow records plus the commands that change it.
 *
 * Nodes keep litegraph's denormalised link fields (`inputs[i].link`, `outputs[j].links`) so a
 * saved file is exactly what ComfyUI writes; every command updates both ends in one
 * transaction, so one command is one reversible diff.
 */
import { History } from "./history.js";
import { Store } from "./store.js";
import { defaultWidgetValues, valuesForWidgets, widgetsForDef } from "./widgets.js";
import { isSubgraphIoNode, readSubgraph, writeSubgraph } from "./subgraph_io.js";
import { adoptDefinitions, definitionsFor, putDefinition } from "./definitions.js";
import { byRank, definitionKey, DOCUMENT_ID, fromRecord, groupKey, linkKey, nodeKey, readWorkflow, rerouteKey, toRecord, writeWorkflow } from "./workflow.js";

export const MODE = { ALWAYS: 0, ON_EVENT: 1, NEVER: 2, ON_TRIGGER: 3, BYPASS: 4 };
const DEFAULT_NODE_SIZE = [240, 120];
/** Definition shown for a subgraph's input and output nodes: slots only, no widgets. */
const IO_DEF = Object.freeze({ name: "SubgraphIO", displayName: "", category: "", description: "", outputNode: false, inputs: [], outputs: [] });

export class Graph {
  /**
   * @param {Map<string, object>} defs parsed node definitions by class name
   * @param {{root?: Graph}} options `root`: the workflow's top graph, for a subgraph's inner graph
   *   (subgraph definitions live in the root's store)
   */
  constructor(defs = new Map(), { root = null } = {}) {
    this.defs = defs;
    this.root = root;
    this.store = new Store();
    this.history = new History(this.store);
    this.#widgetCache = new WeakMap();
    this.store.listen(() => {
      this.#index = null;
      this.#sorted = null;
    });
    this.store.put([{ typeName: "document", id: DOCUMENT_ID, lastNodeId: 0, lastLinkId: 0, lastGroupId: 0, hadGroups: true, meta: { config: {}, extra: {} } }]);
  }

  #index = null;
  #sorted = null;
  #rankCounter = 0;
  #primitiveCache = new WeakMap();
  #widgetCache;

  // ---- loading and saving ----------------------------------------------------------------

  /** Replace the document by a UI workflow (0.4 or 1); clears undo history. */
  load(workflow) {
    this.#replace(readWorkflow(workflow));
  }

  /** Open a subgraph definition (§4.3) as this graph, its input/output as nodes; clears undo history. */
  loadSubgraph(definition) {
    this.#replace(readSubgraph(definition));
  }

  /** This graph written back as the subgraph definition it was opened from. */
  serializeSubgraph() {
    return writeSubgraph(this.parts());
  }

  #replace(records) {
    this.store.transact(() => {
      this.store.remove([...this.allIds()]);
      this.store.put(records);
    });
    this.#rankCounter = records.length;
    this.history.clear();
  }

  *allIds() {
    for (const typeName of ["node", "link", "group", "reroute", "definition", "document"]) for (const record of this.store.ofType(typeName)) yield record.id;
  }

  /** The document as a version 0.4 UI workflow. */
  serialize() {
    return writeWorkflow(this.parts());
  }

  /** The document's records by kind, in file order (what the workflow writers take). */
  parts() {
    return { document: this.document, nodes: this.nodes(), links: this.links(), groups: this.groups(), reroutes: this.reroutes(), definitions: this.definitions() };
  }

  get document() {
    return this.store.get(DOCUMENT_ID);
  }

  // ---- queries ---------------------------------------------------------------------------

  /** Records of one type in file order (draw order for nodes); cached until the next change. */
  #ranked(typeName) {
    this.#sorted ??= new Map();
    let list = this.#sorted.get(typeName);
    if (!list) {
      list = [...this.store.ofType(typeName)].sort(byRank);
      this.#sorted.set(typeName, list);
    }
    return list;
  }

  nodes() {
    return this.#ranked("node");
  }

  links() {
    return this.#ranked("link");
  }

  groups() {
    return this.#ranked("group");
  }

  /** Native reroutes (litegraph's `Reroute` data points, §4.1). */
  reroutes() {
    return this.#ranked("reroute");
  }

  reroute(rerouteId) {
    return this.store.get(rerouteKey(rerouteId));
  }

  /** Subgraph definition records of the whole workflow (nested ones included). */
  definitions() {
    return this.root ? [] : this.#ranked("definition");
  }

  /** A rank after every record so far, for something new. */
  #nextRank() {
    return this.#rankCounter++;
  }

  node(nodeId) {
    return this.store.get(nodeKey(nodeId));
  }

  link(linkId) {
    return this.store.get(linkKey(linkId));
  }

  def(node) {
    return this.defs.get(node.type) ?? (isSubgraphIoNode(node) ? IO_DEF : undefined);
  }

  /** A record this graph's commands must not delete or copy (a subgraph's input/output node). */
  isFixedNode(nodeId) {
    return isSubgraphIoNode(this.node(nodeId));
  }

  /** The subgraph definition record (§4.3) that `type` names in this workflow, if any. */
  subgraphDefinition(type) {
    if (this.root) return this.root.subgraphDefinition(type);
    return typeof type === "string" ? this.store.get(definitionKey(type)) : undefined;
  }

  /** Replace a subgraph definition by `json` (written by its inner graph); see definitions.js. */
  putSubgraphDefinition(json) {
    putDefinition(this.root ?? this, json);
  }

  /** Whether `type` names a subgraph definition (its instances are not unknown nodes). */
  isSubgraphType(type) {
    return this.subgraphDefinition(type) !== undefined;
  }

  /** Widgets of a node (from its def), or `[]` for unknown types; cached per def. */
  widgets(node) {
    if (node.type === "PrimitiveNode") return this.#primitiveWidgets(node);
    const def = this.def(node);
    if (!def) return [];
    let widgets = this.#widgetCache.get(def);
    if (!widgets) {
      widgets = widgetsForDef(def);
      this.#widgetCache.set(def, widgets);
    }
    return widgets;
  }

  /** Where a PrimitiveNode's first link ends: `{target, input, widgetName}` or null. */
  primitiveTarget(node) {
    const link = this.link(node.outputs?.[0]?.links?.[0]);
    const target = link && this.node(link.target_id);
    const widgetName = target?.inputs?.[link.target_slot]?.widget?.name ?? node.outputs?.[0]?.widget?.name;
    const input = target && this.def(target)?.inputs.find((candidate) => candidate.name === widgetName);
    return input ? { target, input, widgetName } : null;
  }

  /** A PrimitiveNode shows the widget of the input it drives (§4.5: its value is baked into that input). */
  #primitiveWidgets(node) {
    const found = this.primitiveTarget(node);
    if (!found) return [];
    const def = this.def(found.target);
    let byName = this.#primitiveCache.get(def);
    if (!byName) this.#primitiveCache.set(def, (byName = new Map()));
    if (!byName.has(found.widgetName)) byName.set(found.widgetName, widgetsForDef({ inputs: [found.input] }));
    return byName.get(found.widgetName);
  }

  /** The node's widget values aligned with `widgets(node)`. */
  widgetValues(node) {
    return valuesForWidgets(this.widgets(node), node.widgets_values);
  }

  #buildIndex() {
    const byTarget = new Map();
    const byOrigin = new Map();
    for (const link of this.store.ofType("link")) {
      byTarget.set(`${link.target_id}:${link.target_slot}`, link);
      const key = String(link.origin_id);
      if (!byOrigin.has(key)) byOrigin.set(key, []);
      byOrigin.get(key).push(link);
    }
    return { byTarget, byOrigin };
  }

  get #links() {
    this.#index ??= this.#buildIndex();
    return this.#index;
  }

  linkInto(nodeId, slot) {
    return this.#links.byTarget.get(`${nodeId}:${slot}`);
  }

  linksFrom(nodeId) {
    return this.#links.byOrigin.get(String(nodeId)) ?? [];
  }

  /** Links that touch any of `nodeIds`. */
  linksOf(nodeIds) {
    const wanted = new Set([...nodeIds].map(String));
    return this.links().filter((link) => wanted.has(String(link.origin_id)) || wanted.has(String(link.target_id)));
  }

  // ---- node commands -----------------------------------------------------------------------

  #nextNodeId() {
    const id = this.document.lastNodeId + 1;
    this.store.update(DOCUMENT_ID, { lastNodeId: id });
    return id;
  }

  #nextLinkId() {
    const id = this.document.lastLinkId + 1;
    this.store.update(DOCUMENT_ID, { lastLinkId: id });
    return id;
  }

  /** The JSON of a new node of `type` (its def gives slots and default widget values). */
  newNodeJson(type, pos, size) {
    const def = this.defs.get(type);
    const inputs = [];
    const outputs = [];
    let widgetsValues = [];
    if (def) {
      // Link-only inputs first, then one slot per widget, as frontend 1.16+ writes them (§4.3).
      for (const input of def.inputs) if (!input.hasWidget) inputs.push({ name: input.name, type: input.type, link: null });
      for (const input of def.inputs) if (input.hasWidget) inputs.push({ name: input.name, type: input.type, link: null, widget: { name: input.name } });
      def.outputs.forEach((output, index) => outputs.push({ name: output.name, type: output.type, links: [], slot_index: index }));
      widgetsValues = defaultWidgetValues(widgetsForDef(def));
    }
    return {
      type, pos: [...pos], size: [...(size ?? DEFAULT_NODE_SIZE)], flags: {}, order: this.store.size, mode: MODE.ALWAYS,
      inputs, outputs, properties: { "Node name for S&R": type }, widgets_values: widgetsValues,
    };
  }

  /** Add a node of `type` at `pos`; returns its id. */
  addNode(type, pos, { size, widgetsValues, title } = {}) {
    return this.store.transact(() => {
      const json = this.newNodeJson(type, pos, size);
      if (widgetsValues) json.widgets_values = widgetsValues;
      if (title) json.title = title;
      const id = this.#nextNodeId();
      this.store.put([toRecord("node", id, { id, ...json }, this.#nextRank())]);
      return id;
    });
  }

  updateNode(nodeId, patch) {
    this.store.update(nodeKey(nodeId), patch);
  }

  removeNodes(nodeIds) {
    const removable = [...nodeIds].filter((id) => !this.isFixedNode(id));
    this.store.transact(() => {
      for (const link of this.linksOf(removable)) this.removeLink(link.jsonId);
      this.store.remove(removable.map(nodeKey));
    });
  }

  moveNodes(nodeIds, dx, dy) {
    this.store.put([...nodeIds].map((id) => {
      const node = this.node(id);
      return { ...node, pos: [node.pos[0] + dx, node.pos[1] + dy] };
    }));
  }

  /** Set a widget value by its index in `widgets(node)`; writes the whole aligned list. */
  setWidgetValue(nodeId, widgetIndex, value) {
    const node = this.node(nodeId);
    const values = this.widgetValues(node);
    values[widgetIndex] = value;
    const saved = node.widgets_values;
    if (saved && !Array.isArray(saved) && typeof saved === "object") {
      this.updateNode(nodeId, { widgets_values: { ...saved, [this.widgets(node)[widgetIndex].name]: value } });
    } else {
      this.updateNode(nodeId, { widgets_values: values });
    }
  }

  /** Set `mode` on every node, or back to ALWAYS when all of them already have it (Ctrl+M, Ctrl+B). */
  toggleMode(nodeIds, mode) {
    const nodes = [...nodeIds].map((id) => this.node(id)).filter(Boolean);
    const next = nodes.every((node) => node.mode === mode) ? MODE.ALWAYS : mode;
    this.store.put(nodes.map((node) => ({ ...node, mode: next })));
  }

  toggleCollapsed(nodeIds) {
    const nodes = [...nodeIds].map((id) => this.node(id)).filter(Boolean);
    const collapse = !nodes.every((node) => node.flags?.collapsed);
    this.store.put(nodes.map((node) => ({ ...node, flags: { ...node.flags, collapsed: collapse } })));
  }

  /** Pin every node, or unpin them all when all are pinned; an unpinned node has no `pinned` flag. */
  togglePinned(nodeIds) {
    const nodes = [...nodeIds].map((id) => this.node(id)).filter(Boolean);
    const pin = !nodes.every(isPinned);
    this.store.put(nodes.map((node) => {
      const { pinned, ...flags } = node.flags ?? {};
      return { ...node, flags: pin ? { ...flags, pinned: true } : flags };
    }));
  }

  // ---- link commands ---------------------------------------------------------------------

  /**
   * Link output `originSlot` of `originId` to input `targetSlot` of `targetId`, replacing
   * whatever fed that input. Returns the new link id.
   */
  connect(originId, originSlot, targetId, targetSlot) {
    return this.store.transact(() => {
      const existing = this.linkInto(targetId, targetSlot);
      if (existing) this.removeLink(existing.jsonId);
      const origin = this.node(originId);
      const target = this.node(targetId);
      const type = origin.outputs[originSlot]?.type ?? "*";
      const id = this.#nextLinkId();
      const outputs = origin.outputs.map((output, index) => (index === originSlot ? { ...output, links: [...(output.links ?? []), id] } : output));
      this.store.put([{ ...origin, outputs }]);
      const freshTarget = this.node(targetId);
      const inputs = freshTarget.inputs.map((input, index) => (index === targetSlot ? { ...input, link: id } : input));
      this.store.put([{ ...freshTarget, inputs }, toRecord("link", id, { id, origin_id: origin.jsonId, origin_slot: originSlot, target_id: target.jsonId, target_slot: targetSlot, type }, this.#nextRank())]);
      if (origin.type === "PrimitiveNode") this.#adoptPrimitiveTarget(originId);
      if (target.type === "Reroute" && type !== "*") {
        // A reroute passes its input's type on, so the links leaving it are coloured and checked by it.
        const reroute = this.node(targetId);
        this.updateNode(targetId, { outputs: reroute.outputs.map((output, index) => (index === 0 ? { ...output, type } : output)) });
      }
      return id;
    });
  }

  /** A primitive linked to a widget input takes that input's type, and its value when it has none. */
  #adoptPrimitiveTarget(primitiveId) {
    const primitive = this.node(primitiveId);
    const found = this.primitiveTarget(primitive);
    if (!found) return;
    const output = { ...primitive.outputs[0], name: found.input.type, type: found.input.type, widget: { name: found.widgetName } };
    const patch = { outputs: [output, ...primitive.outputs.slice(1)] };
    if (!primitive.widgets_values?.length) {
      const targetWidgets = this.widgets(found.target);
      const index = targetWidgets.findIndex((widget) => widget.name === found.widgetName && widget.kind !== "CONTROL");
      const own = widgetsForDef({ inputs: [found.input] });
      patch.widgets_values = valuesForWidgets(own, [this.widgetValues(found.target)[index]]);
    }
    this.updateNode(primitiveId, patch);
  }

  removeLink(linkId) {
    const link = this.link(linkId);
    if (!link) return;
    this.store.transact(() => {
      const origin = this.node(link.origin_id);
      if (origin) {
        const outputs = origin.outputs.map((output, index) => (index === link.origin_slot ? { ...output, links: (output.links ?? []).filter((id) => id !== link.jsonId) } : output));
        this.store.put([{ ...origin, outputs }]);
      }
      const target = this.node(link.target_id);
      if (target) {
        const inputs = target.inputs.map((input, index) => (index === link.target_slot && input.link === link.jsonId ? { ...input, link: null } : input));
        this.store.put([{ ...target, inputs }]);
      }
      this.store.remove([link.id]);
      this.#dropLinkFromReroutes(link.jsonId);
    });
  }

  /** A removed link leaves the reroutes it ran through; a reroute left with no link goes too. */
  #dropLinkFromReroutes(linkId) {
    const touched = this.reroutes().filter((reroute) => (reroute.linkIds ?? []).includes(linkId));
    const emptied = [];
    for (const reroute of touched) {
      const linkIds = reroute.linkIds.filter((id) => id !== linkId);
      if (!linkIds.length && !reroute.floating) emptied.push(reroute.id);
      else this.store.put([{ ...reroute, linkIds }]);
    }
    this.store.remove(emptied);
  }

  /**
   * Index of the input slot owned by widget `name`, adding the slot for older files
   * (before frontend 1.16 a widget had a slot only once converted to an input, §4.3).
   */
  ensureWidgetInput(nodeId, name) {
    const node = this.node(nodeId);
    const index = node.inputs.findIndex((input) => input.widget?.name === name);
    if (index >= 0) return index;
    const input = this.def(node)?.inputs.find((candidate) => candidate.name === name);
    this.updateNode(nodeId, { inputs: [...node.inputs, { name, type: input?.type ?? "*", link: null, widget: { name } }] });
    return node.inputs.length;
  }

  // ---- groups ----------------------------------------------------------------------------

  addGroup(bounding, title = "Group") {
    return this.store.transact(() => {
      const id = this.document.lastGroupId + 1;
      this.store.update(DOCUMENT_ID, { lastGroupId: id, hadGroups: true });
      this.store.put([toRecord("group", id, { id, title, bounding: [...bounding], color: "#3f789e", font_size: 24, flags: {} }, this.#nextRank())]);
      return id;
    });
  }

  updateGroup(groupRecordId, patch) {
    this.store.update(groupRecordId, patch);
  }

  removeGroups(groupRecordIds) {
    this.store.remove(groupRecordIds);
  }

  // ---- clipboard -------------------------------------------------------------------------

  /**
   * A self-contained copy of `nodeIds`: their JSON, the links among them, and the links
   * that fed them from outside (used by "paste with input links", Ctrl+Shift+V).
   */
  copy(nodeIds) {
    const copied = [...nodeIds].filter((id) => !this.isFixedNode(id));
    const wanted = new Set(copied.map(String));
    const nodes = copied.map((id) => this.node(id)).filter(Boolean).map(fromRecord);
    const links = [];
    const inputLinks = [];
    for (const link of this.links()) {
      if (!wanted.has(String(link.target_id))) continue;
      const tuple = [link.jsonId, link.origin_id, link.origin_slot, link.target_id, link.target_slot, link.type];
      (wanted.has(String(link.origin_id)) ? links : inputLinks).push(tuple);
    }
    return { kind: "kiln-clipboard", nodes, links, inputLinks, definitions: definitionsFor(this.root ?? this, nodes) };
  }

  /** Add the subgraph definitions (saved JSON) this workflow lacks, e.g. with pasted instances. */
  adoptSubgraphDefinitions(definitions) {
    adoptDefinitions(this.root ?? this, definitions);
  }

  /**
   * Paste a clipboard with its top-left node at `at`; new ids for nodes and links.
   * Returns the new node ids.
   */
  paste(clipboard, at, { keepInputLinks = false } = {}) {
    if (!clipboard?.nodes?.length) return [];
    this.adoptSubgraphDefinitions(clipboard.definitions);
    return this.store.transact(() => {
      const minX = Math.min(...clipboard.nodes.map((node) => node.pos[0]));
      const minY = Math.min(...clipboard.nodes.map((node) => node.pos[1]));
      const newIds = new Map();
      for (const json of clipboard.nodes) {
        const id = this.#nextNodeId();
        newIds.set(String(json.id), id);
        const inputs = (json.inputs ?? []).map((input) => ("link" in input ? { ...input, link: null } : input));
        const outputs = (json.outputs ?? []).map((output) => ({ ...output, links: [] }));
        const pos = [json.pos[0] - minX + at[0], json.pos[1] - minY + at[1]];
        this.store.put([toRecord("node", id, { ...json, id, pos, inputs, outputs }, this.#nextRank())]);
      }
      for (const [, origin, originSlot, target, targetSlot] of clipboard.links) {
        this.connect(newIds.get(String(origin)), originSlot, newIds.get(String(target)), targetSlot);
      }
      if (keepInputLinks) {
        for (const [, origin, originSlot, target, targetSlot] of clipboard.inputLinks ?? []) {
          if (this.node(origin)?.outputs[originSlot]) this.connect(origin, originSlot, newIds.get(String(target)), targetSlot);
        }
      }
      return [...newIds.values()];
    });
  }
}

/** Whether dragging may not move or resize the node (`flags.pinned`, §4.3). */
export function isPinned(node) {
  return node.flags?.pinned === true;
}

export { nodeKey, linkKey, groupKey, rerouteKey };
