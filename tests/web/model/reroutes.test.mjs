// Native litegraph reroutes (comfy-compat §4.1): added on a link segment, moved, removed,
// one exact undo step each, and written as 0.4 (`extra.reroutes` + `extra.linkExtensions`)
// and as version 1 (top-level `reroutes`, links' `parentId`).
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { Graph } from "../../../web/model/graph.js";
import { addReroute, moveReroutes, removeReroutes, reroutePath } from "../../../web/model/reroutes.js";
import { writeWorkflowV1 } from "../../../web/model/workflow.js";
import { coreDefs, readJson, WORKFLOWS } from "./helpers.mjs";

const defs = coreDefs();
const load = (name) => {
  const graph = new Graph(defs);
  graph.load(readJson(path.join(WORKFLOWS, `${name}.json`)));
  return graph;
};
const pathIds = (graph, linkId) => reroutePath(graph, graph.link(linkId)).map((reroute) => reroute.jsonId);

test("the fixture's chains are read origin first", () => {
  const graph = load("native_reroute");
  assert.deepEqual(pathIds(graph, 1), [1, 2]);
  assert.deepEqual(pathIds(graph, 3), [3]);
  assert.deepEqual(pathIds(graph, 2), []);
});

test("a reroute added on a plain link becomes its parent, and is written in both schemas", () => {
  const graph = load("default_text_to_image");
  const id = graph.history.group(() => addReroute(graph, 1, 0, [100, 50]));
  assert.equal(id, 1);
  assert.equal(graph.link(1).parentId, 1);
  const saved = graph.serialize();
  assert.deepEqual(saved.extra.reroutes, [{ id: 1, pos: [100, 50], linkIds: [1] }]);
  assert.deepEqual(saved.extra.linkExtensions, [{ id: 1, parentId: 1 }]);
  assert.deepEqual(saved.links.find((link) => link[0] === 1).length, 6, "0.4 links stay tuples");
  const v1 = writeWorkflowV1(graph.parts());
  assert.equal(v1.version, 1);
  assert.deepEqual(v1.reroutes, [{ id: 1, pos: [100, 50], linkIds: [1] }]);
  assert.equal(v1.links.find((link) => link.id === 1).parentId, 1);
  assert.equal(v1.links.find((link) => link.id === 2).parentId, undefined);
  assert.equal(v1.state.lastRerouteId, 1);
  graph.history.undo();
  assert.deepEqual(graph.serialize(), readJson(path.join(WORKFLOWS, "default_text_to_image.json")));
});

test("a version 1 workflow's reroutes survive being read and written back as version 1 and as 0.4", () => {
  const graph = load("default_text_to_image");
  addReroute(graph, 1, 0, [100, 50]);
  addReroute(graph, 1, 1, [200, 60]);
  const v1 = writeWorkflowV1(graph.parts());
  const again = new Graph(defs);
  again.load(structuredClone(v1));
  assert.deepEqual(writeWorkflowV1(again.parts()), v1);
  assert.deepEqual(pathIds(again, 1), [1, 2]);
  assert.deepEqual(again.serialize().extra.linkExtensions, [{ id: 1, parentId: 2 }]);
});

test("a reroute inserted between two reroutes joins the chain there", () => {
  const graph = load("native_reroute");
  const id = addReroute(graph, 1, 1, [420, 210]);
  assert.deepEqual(pathIds(graph, 1), [1, id, 2]);
  assert.deepEqual(graph.reroute(id).linkIds, [1]);
  const shared = addReroute(graph, 8, 0, [500, 450]);
  assert.deepEqual(pathIds(graph, 3), [shared, 3], "links that share a reroute share the segment before it");
  assert.deepEqual(graph.reroute(shared).linkIds, [8, 3, 5]);
});

test("moving and removing reroutes; the links run on to the parent", () => {
  const graph = load("native_reroute");
  const before = graph.serialize();
  graph.history.group(() => moveReroutes(graph, [1, 2], 10, -5));
  assert.deepEqual(graph.reroute(2).pos, [460, 215]);
  graph.history.group(() => removeReroutes(graph, [2]));
  assert.equal(graph.link(1).parentId, 1);
  graph.history.group(() => removeReroutes(graph, [1, 3]));
  assert.equal(graph.link(1).parentId, undefined);
  assert.equal(graph.link(8).parentId, undefined);
  const saved = graph.serialize();
  assert.deepEqual(saved.extra.reroutes, [{ id: 4, pos: [700, 700], linkIds: [], floating: { slotType: "output" } }]);
  assert.deepEqual(saved.extra.linkExtensions, []);
  graph.history.undo();
  graph.history.undo();
  graph.history.undo();
  assert.deepEqual(graph.serialize(), before);
});

test("a removed link leaves its reroutes, and a reroute with no link left goes too", () => {
  const graph = load("native_reroute");
  graph.history.group(() => graph.removeLink(3));
  assert.deepEqual(graph.reroute(3).linkIds, [8, 5]);
  graph.history.group(() => graph.removeLink(1));
  assert.equal(graph.reroute(1), undefined);
  assert.equal(graph.reroute(2), undefined);
  assert.ok(graph.reroute(4), "a floating reroute is kept");
  graph.history.undo();
  assert.deepEqual(graph.reroute(2).linkIds, [1]);
});
