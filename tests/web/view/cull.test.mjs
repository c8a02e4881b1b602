// The viewport culling index: the nodes and links that meet a view, rebuilt when the graph changes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Graph } from "../../../web/model/graph.js";
import { addReroute } from "../../../web/model/reroutes.js";
import { CullIndex } from "../../../web/view/cull.js";
import { coreDefs } from "../model/helpers.mjs";

const defs = coreDefs();

function row() {
  const graph = new Graph(defs);
  const ids = [0, 1, 2].map((index) => graph.addNode("ImageInvert", [index * 1000, 0], { size: [200, 60] }));
  graph.connect(ids[0], 0, ids[1], 0);
  graph.connect(ids[1], 0, ids[2], 0);
  return { graph, ids };
}

test("only the nodes that overlap the view, in draw order", () => {
  const { graph, ids } = row();
  const cull = new CullIndex();
  assert.deepEqual(cull.visibleNodes(graph, [-50, -50, 300, 200]).map((node) => node.jsonId), [ids[0]]);
  assert.deepEqual(cull.visibleNodes(graph, [150, -50, 1000, 200]).map((node) => node.jsonId), [ids[0], ids[1]]);
  assert.deepEqual(cull.visibleNodes(graph, [5000, 0, 100, 100]), []);
});

test("a link is kept when the view meets the span between its nodes", () => {
  const { graph, ids } = row();
  const cull = new CullIndex();
  const between = cull.visibleLinks(graph, [500, 0, 100, 50]);
  assert.deepEqual(between.map(([link, origin, target]) => [origin.jsonId, target.jsonId, link.origin_id]), [[ids[0], ids[1], ids[0]]]);
  assert.deepEqual(cull.visibleLinks(graph, [500, 2000, 100, 50]), []);
});

test("the index follows graph changes, and a link through a reroute is always kept", () => {
  const { graph, ids } = row();
  const cull = new CullIndex();
  assert.equal(cull.visibleNodes(graph, [4000, 0, 100, 100]).length, 0);
  graph.moveNodes([ids[2]], 2000, 0);
  assert.deepEqual(cull.visibleNodes(graph, [4000, 0, 100, 100]).map((node) => node.jsonId), [ids[2]]);
  addReroute(graph, graph.links()[0].jsonId, 0, [500, 5000]);
  assert.equal(cull.visibleLinks(graph, [500, 5000, 10, 10]).length, 1);
});
