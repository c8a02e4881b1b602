// UI workflow JSON read and written back (comfy-compat §4.1–§4.3): exact round trips.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { Graph } from "../../../web/model/graph.js";
import { isApiPrompt } from "../../../web/model/workflow.js";
import { coreDefs, readJson, WORKFLOWS, workflowFixtures } from "./helpers.mjs";

const defs = coreDefs();

for (const name of workflowFixtures().filter((fixture) => readJson(path.join(WORKFLOWS, `${fixture}.json`)).version !== 1)) {
  test(`version 0.4 fixture ${name} round-trips unchanged`, () => {
    const original = readJson(path.join(WORKFLOWS, `${name}.json`));
    const graph = new Graph(defs);
    graph.load(original);
    assert.deepEqual(graph.serialize(), original);
  });
}

test("unknown keys at every level survive a round trip", () => {
  const original = readJson(path.join(WORKFLOWS, "default_text_to_image.json"));
  original.kiln_future_field = { nested: [1, 2] };
  original.extra.someone_elses_setting = true;
  original.nodes[0].custom_node_state = "kept";
  original.nodes[0].outputs[0].custom_slot_key = 3;
  original.nodes[0].properties.plugin_property = "x";
  const graph = new Graph(defs);
  graph.load(structuredClone(original));
  const written = graph.serialize();
  assert.deepEqual(written.kiln_future_field, { nested: [1, 2] });
  assert.equal(written.extra.someone_elses_setting, true);
  assert.equal(written.nodes[0].custom_node_state, "kept");
  assert.equal(written.nodes[0].outputs[0].custom_slot_key, 3);
  assert.equal(written.nodes[0].properties.plugin_property, "x");
  assert.deepEqual(written, original);
});

test("version 1 (links as objects, state counters) is read and written as 0.4", () => {
  const v1 = readJson(path.join(WORKFLOWS, "version1_links_as_objects.json"));
  const graph = new Graph(defs);
  graph.load(v1);
  const written = graph.serialize();
  assert.equal(written.version, 0.4);
  assert.equal(written.last_node_id, v1.state.lastNodeId);
  assert.equal(written.last_link_id, v1.state.lastLinkId);
  assert.equal(written.links.length, v1.links.length);
  const first = v1.links[0];
  assert.deepEqual(written.links.find((link) => link[0] === first.id), [first.id, first.origin_id, first.origin_slot, first.target_id, Number(first.target_slot), first.type]);
  assert.equal("state" in written, false);
  assert.deepEqual(written.extra.ds, v1.extra.ds);
  assert.deepEqual(written.models, v1.models);
});

test("an edited graph keeps both ends of every link consistent", () => {
  const graph = new Graph(defs);
  graph.load(readJson(path.join(WORKFLOWS, "default_text_to_image.json")));
  graph.removeNodes([8]);
  const written = graph.serialize();
  const linkIds = new Set(written.links.map((link) => link[0]));
  for (const node of written.nodes) {
    for (const input of node.inputs ?? []) if (input.link != null) assert.ok(linkIds.has(input.link), `input link ${input.link} of node ${node.id}`);
    for (const output of node.outputs ?? []) for (const id of output.links ?? []) assert.ok(linkIds.has(id), `output link ${id} of node ${node.id}`);
  }
  assert.ok(written.links.every((link) => link[1] !== 8 && link[3] !== 8));
});

test("API prompts are told apart from UI workflows", () => {
  assert.equal(isApiPrompt(readJson(path.join(WORKFLOWS, "default_text_to_image.api.json"))), true);
  assert.equal(isApiPrompt(readJson(path.join(WORKFLOWS, "default_text_to_image.json"))), false);
  assert.equal(isApiPrompt({}), false);
});
