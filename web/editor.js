/**
 * One open workflow (an editor tab): its graph document, camera, selection, per-node run
 * status (running, progress, images, errors) and transient interaction state.
 */
import { Graph } from "./model/graph.js";
import { Camera } from "./view/camera.js";

export class Editor {
  constructor(defs, { name = "Unsaved Workflow", path = null } = {}) {
    this.graph = new Graph(defs);
    this.camera = new Camera();
    this.selection = new Set();
    /** node id (string) -> `{running, progress, images, imageIndex, preview, error}` */
    this.status = new Map();
    this.interaction = { dragLink: null, box: null, activeWidget: null };
    this.name = name;
    this.path = path;
    this.modified = false;
    this.graph.store.listen((diff, source) => {
      if (source !== "load") this.modified = true;
      for (const id of Object.keys(diff.removed)) this.selection.delete(id);
    });
  }

  /** Open a UI workflow in this tab (camera from `extra.ds` when present). */
  load(workflow) {
    this.graph.load(workflow);
    this.selection.clear();
    this.status.clear();
    const ds = workflow.extra?.ds;
    if (ds && Number.isFinite(ds.scale)) this.camera = new Camera(ds.scale, ds.offset ?? [0, 0]);
    this.modified = false;
  }

  /** The UI workflow (0.4) with the current camera in `extra.ds`. */
  serialize() {
    const workflow = this.graph.serialize();
    workflow.extra = { ...(workflow.extra ?? {}), ds: this.camera.toDs() };
    return workflow;
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
