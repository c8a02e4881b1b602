/**
 * Which nodes and links meet the viewport, answered from flat arrays of bounding boxes that
 * are rebuilt only when the graph changes (records are immutable, so a changed graph gives
 * new `nodes()`/`links()` arrays). A frame that pans or zooms then tests plain numbers
 * instead of walking records. A link's box spans both of its nodes plus the curve's bulge;
 * a link through native reroutes is always kept (its reroutes may be anywhere).
 */
import { nodeBounds } from "./layout.js";

const LINK_BULGE_X = 60;
const LINK_BULGE_Y = 20;

export class CullIndex {
  #nodes = null;
  #links = null;
  #nodeBoxes = new Float64Array(0);
  #linkBoxes = new Float64Array(0);
  #linkEnds = [];

  #update(graph) {
    const nodes = graph.nodes();
    const links = graph.links();
    if (nodes === this.#nodes && links === this.#links) return;
    this.#nodes = nodes;
    this.#links = links;
    this.#nodeBoxes = new Float64Array(nodes.length * 4);
    nodes.forEach((node, index) => this.#nodeBoxes.set(nodeBounds(node), index * 4));
    this.#linkBoxes = new Float64Array(links.length * 4);
    this.#linkEnds = links.map((link, index) => {
      const origin = graph.node(link.origin_id);
      const target = graph.node(link.target_id);
      if (!origin || !target) {
        this.#linkBoxes.set([Infinity, Infinity, -Infinity, -Infinity], index * 4);
        return null;
      }
      if (link.parentId != null) {
        this.#linkBoxes.set([-Infinity, -Infinity, Infinity, Infinity], index * 4);
        return [origin, target];
      }
      const [ax, ay, aw, ah] = nodeBounds(origin);
      const [bx, by, bw, bh] = nodeBounds(target);
      this.#linkBoxes.set([Math.min(ax + aw, bx) - LINK_BULGE_X, Math.min(ay, by) - LINK_BULGE_Y,
        Math.max(ax + aw, bx) + LINK_BULGE_X, Math.max(ay + ah, by + bh) + LINK_BULGE_Y], index * 4);
      return [origin, target];
    });
  }

  /** Nodes whose box overlaps `view` (`[x, y, w, h]`), in draw order. */
  visibleNodes(graph, [x, y, w, h]) {
    this.#update(graph);
    const boxes = this.#nodeBoxes;
    const visible = [];
    for (let i = 0, n = this.#nodes.length; i < n; i++) {
      const o = i * 4;
      if (boxes[o] < x + w && boxes[o] + boxes[o + 2] > x && boxes[o + 1] < y + h && boxes[o + 1] + boxes[o + 3] > y) visible.push(this.#nodes[i]);
    }
    return visible;
  }

  /** Links that may cross `view`, each as `[link, origin, target]`. */
  visibleLinks(graph, [x, y, w, h]) {
    this.#update(graph);
    const boxes = this.#linkBoxes;
    const visible = [];
    for (let i = 0, n = this.#links.length; i < n; i++) {
      const o = i * 4;
      if (boxes[o] <= x + w && boxes[o + 2] >= x && boxes[o + 1] <= y + h && boxes[o + 3] >= y) visible.push([this.#links[i], ...this.#linkEnds[i]]);
    }
    return visible;
  }
}
