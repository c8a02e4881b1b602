/**
 * One open workflow (an editor tab): its graph document, camera, selection, per-node run
 * status (running, progress, images, errors) and transient interaction state.
 *
 * A tab shows one graph level at a time: the workflow itself, or a subgraph definition opened
 * from an instance node (and a subgraph inside that, and so on). Each level has its own graph,
 * camera and selection; `graph`, `camera` and `selection` are the shown level's. An opened
 * definition's inner graph keeps its own undo history and writes every change back into the
 * workflow's definition record, so saving and queueing always carry the edited definitions.
 */
import { Graph } from "./model/graph.js";
import { Camera } from "./view/camera.js";

export class Editor {
  constructor(defs, { name = "Unsaved Workflow", path = null } = {}) {
    this.rootGraph = new Graph(defs);
    /** `[{graph, camera, selection, title, definitionId}]`, the workflow first, the shown level last. */
    this.levels = [{ graph: this.rootGraph, camera: new Camera(), selection: new Set(), title: name, definitionId: null }];
    /** subgraph definition id -> its inner Graph (kept while the tab lives, with its undo history) */
    this.innerGraphs = new Map();
    /** node id (string) -> `{running, progress, images, imageIndex, preview, error}` of the workflow's nodes */
    this.status = new Map();
    this.innerStatus = new Map();
    this.interaction = { dragLink: null, box: null, activeWidget: null };
    this.name = name;
    this.path = path;
    this.modified = false;
    this.rootGraph.store.listen((diff, source) => {
      if (source !== "load") this.modified = true;
      this.#forgetRemoved(this.levels[0].selection, diff);
    });
  }

  get level() {
    return this.levels[this.levels.length - 1];
  }

  get graph() {
    return this.level.graph;
  }

  get camera() {
    return this.level.camera;
  }

  set camera(camera) {
    this.level.camera = camera;
  }

  get selection() {
    return this.level.selection;
  }

  /** Run status of the shown level's nodes (runs are reported on the workflow's nodes only). */
  get viewStatus() {
    return this.levels.length === 1 ? this.status : this.innerStatus;
  }

  get depth() {
    return this.levels.length - 1;
  }

  /** Open a UI workflow in this tab (camera from `extra.ds` when present). */
  load(workflow) {
    this.rootGraph.load(workflow);
    this.levels.length = 1;
    this.innerGraphs.clear();
    this.selection.clear();
    this.status.clear();
    const ds = workflow.extra?.ds;
    if (ds && Number.isFinite(ds.scale)) this.camera = new Camera(ds.scale, ds.offset ?? [0, 0]);
    this.modified = false;
  }

  /** The UI workflow (0.4) with the workflow level's camera in `extra.ds`. */
  serialize() {
    const workflow = this.rootGraph.serialize();
    workflow.extra = { ...(workflow.extra ?? {}), ds: this.levels[0].camera.toDs() };
    return workflow;
  }

  /**
   * Show the inside of subgraph instance `nodeId` of the shown level. Returns false when the
   * node is not a subgraph instance.
   */
  enterSubgraph(nodeId) {
    const node = this.graph.node(nodeId);
    const definition = node && this.rootGraph.subgraphDefinition(node.type);
    if (!definition) return false;
    const graph = this.#innerGraph(definition);
    this.levels.push({ graph, camera: new Camera(), selection: new Set(), title: node.title ?? definition.name ?? "Subgraph", definitionId: definition.jsonId, fresh: true });
    this.interaction = { dragLink: null, box: null, activeWidget: null };
    return true;
  }

  /** Go back to level `depth` (0 is the workflow); by default one level up. */
  exitTo(depth = this.depth - 1) {
    if (depth < 0 || depth >= this.depth) return false;
    this.levels.length = depth + 1;
    this.interaction = { dragLink: null, box: null, activeWidget: null };
    return true;
  }

  #innerGraph(definition) {
    let graph = this.innerGraphs.get(definition.jsonId);
    if (graph) return graph;
    graph = new Graph(this.rootGraph.defs, { root: this.rootGraph });
    graph.loadSubgraph(this.#definitionJson(definition));
    graph.store.listen((diff) => {
      this.rootGraph.putSubgraphDefinition(graph.serializeSubgraph());
      for (const level of this.levels) if (level.graph === graph) this.#forgetRemoved(level.selection, diff);
    });
    this.innerGraphs.set(definition.jsonId, graph);
    return graph;
  }

  #definitionJson(record) {
    const { typeName, id, jsonId, rank, owner, nestedMeta, ...json } = record;
    return { id: jsonId, ...json };
  }

  #forgetRemoved(selection, diff) {
    for (const id of Object.keys(diff.removed)) selection.delete(id);
  }

  nodeStatus(nodeId) {
    const key = String(nodeId);
    if (!this.status.has(key)) this.status.set(key, {});
    return this.status.get(key);
  }

  clearRunStatus() {
    for (const status of this.status.values()) {
      status.running = false;
      status.progress = null;
      status.error = null;
      status.preview = null;
    }
  }
}
