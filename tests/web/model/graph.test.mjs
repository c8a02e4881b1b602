// Graph commands: each one is one exact, reversible step; groups make one undo step.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { Graph, isPinned, MODE } from "../../../web/model/graph.js";
import { coreDefs, readJson, WORKFLOWS } from "./helpers.mjs";

const defs = coreDefs();
const loaded = () => {
  const graph = new Graph(defs);
  graph.load(readJson(path.join(WORKFLOWS, "default_text_to_image.json")));
  return graph;
};

test("a new node gets slots and default widget values from its def", () => {
  const graph = new Graph(defs);
  const id = graph.addNode("KSampler", [10, 20]);
  const node = graph.node(id);
  assert.deepEqual(node.inputs.filter((input) => !input.widget).map((input) => input.name), ["model", "positive", "negative", "latent_image"]);
  assert.deepEqual(node.inputs.filter((input) => input.widget).map((input) => input.name), ["seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"]);
  const schedulers = defs.get("KSampler").inputs.find((input) => input.name === "scheduler").options.values;
  assert.deepEqual(node.widgets_values, [0, "randomize", 20, 8, "euler", schedulers[0], 1]);
  assert.deepEqual(node.outputs.map((output) => output.type), ["LATENT"]);
});

test("connecting an input replaces the link that fed it", () => {
  const graph = new Graph(defs);
  const first = graph.addNode("EmptyLatentImage", [0, 0]);
  const second = graph.addNode("EmptyLatentImage", [0, 200]);
  const sampler = graph.addNode("KSampler", [300, 0]);
  graph.connect(first, 0, sampler, 3);
  const linkId = graph.connect(second, 0, sampler, 3);
  assert.equal(graph.links().length, 1);
  assert.equal(graph.node(sampler).inputs[3].link, linkId);
  assert.deepEqual(graph.node(first).outputs[0].links, []);
  assert.deepEqual(graph.node(second).outputs[0].links, [linkId]);
});

test("undo of a multi-node paste removes every pasted node and link in one step", () => {
  const graph = loaded();
  const before = graph.serialize();
  const clipboard = graph.copy([4, 6, 7, 3]);
  graph.history.group(() => graph.paste(clipboard, [1000, 1000]));
  assert.equal(graph.nodes().length, before.nodes.length + 4);
  assert.ok(graph.links().length > before.links.length);
  graph.history.undo();
  assert.deepEqual(graph.serialize(), before);
});

test("paste keeps links among pasted nodes; Ctrl+Shift+V also keeps input links", () => {
  const graph = loaded();
  const clipboard = graph.copy([6, 3]);
  const plain = graph.paste(clipboard, [0, 900]);
  const linksInto = (id) => graph.node(id).inputs.filter((input) => input.link != null).length;
  assert.equal(linksInto(plain[0]), 0);
  const withLinks = graph.paste(clipboard, [0, 1200], { keepInputLinks: true });
  assert.equal(linksInto(withLinks[0]), 1);
  assert.ok(linksInto(withLinks[1]) >= 3);
});

test("moving many nodes inside a group is one undo step", () => {
  const graph = loaded();
  const positions = graph.nodes().map((node) => [...node.pos]);
  graph.history.begin();
  for (let step = 0; step < 10; step++) graph.moveNodes([3, 4, 5], 5, 3);
  graph.history.end();
  graph.history.undo();
  assert.deepEqual(graph.nodes().map((node) => node.pos), positions);
  graph.history.redo();
  assert.deepEqual(graph.node(3).pos, [positions[graph.nodes().findIndex((node) => node.jsonId === 3)][0] + 50, positions[graph.nodes().findIndex((node) => node.jsonId === 3)][1] + 30]);
});

test("deleting nodes removes their links and undo restores both ends", () => {
  const graph = loaded();
  const before = graph.serialize();
  graph.history.group(() => graph.removeNodes([3]));
  assert.equal(graph.links().some((link) => link.origin_id === 3 || link.target_id === 3), false);
  graph.history.undo();
  assert.deepEqual(graph.serialize(), before);
});

test("mute and bypass toggle, and toggle back when every node already has the mode", () => {
  const graph = loaded();
  graph.toggleMode([3, 8], MODE.BYPASS);
  assert.deepEqual([graph.node(3).mode, graph.node(8).mode], [4, 4]);
  graph.toggleMode([3, 8], MODE.BYPASS);
  assert.deepEqual([graph.node(3).mode, graph.node(8).mode], [0, 0]);
  graph.toggleMode([3], MODE.NEVER);
  assert.equal(graph.node(3).mode, 2);
});

test("setting a widget value writes the aligned widgets_values list", () => {
  const graph = loaded();
  graph.setWidgetValue(3, 2, 33);
  assert.equal(graph.node(3).widgets_values[2], 33);
  graph.history.undo();
  assert.notEqual(graph.node(3).widgets_values[2], 33);
});

test("a widget of an old-format node gains an input slot when a link is dropped on it", () => {
  const graph = loaded();
  const slot = graph.ensureWidgetInput(5, "width");
  assert.equal(graph.node(5).inputs[slot].widget.name, "width");
  assert.equal(graph.ensureWidgetInput(5, "width"), slot);
});

test("a primitive shows the widget of the input it drives and takes its value", () => {
  const graph = loaded();
  const primitive = graph.addNode("PrimitiveNode", [0, 600]);
  const slot = graph.ensureWidgetInput(3, "seed");
  graph.connect(primitive, 0, 3, slot);
  const node = graph.node(primitive);
  assert.deepEqual(graph.widgets(node).map((widget) => widget.name), ["seed", "control_after_generate"]);
  assert.equal(node.outputs[0].type, "INT");
  assert.equal(node.widgets_values[0], graph.widgetValues(graph.node(3))[0]);
});

test("subgraph instances are recognised by their definition, not reported as unknown", () => {
  const graph = new Graph(defs);
  graph.load(readJson(path.join(WORKFLOWS, "subgraph_nested.json")));
  const instance = graph.nodes().find((node) => !defs.has(node.type));
  assert.ok(graph.isSubgraphType(instance.type));
  assert.equal(typeof graph.subgraphDefinition(instance.type).name, "string");
  assert.equal(graph.isSubgraphType("KSampler"), false);
});

test("a reroute takes the type of the link that feeds it", () => {
  const graph = loaded();
  const reroute = graph.addNode("Reroute", [0, 700]);
  graph.connect(4, 2, reroute, 0);
  assert.equal(graph.node(reroute).outputs[0].type, "VAE");
  const link = graph.connect(reroute, 0, 8, 1);
  assert.equal(graph.link(link).type, "VAE");
});

test("pinning nodes is one undo step and saves flags.pinned, absent once unpinned", () => {
  const graph = loaded();
  const flagsOf = (workflow, id) => workflow.nodes.find((node) => node.id === id).flags;
  graph.history.group(() => graph.togglePinned([3, 4]));
  assert.ok(isPinned(graph.node(3)) && isPinned(graph.node(4)));
  const saved = graph.serialize();
  assert.equal(flagsOf(saved, 3).pinned, true);
  assert.equal(flagsOf(saved, 5).pinned, undefined);

  const reloaded = new Graph(defs);
  reloaded.load(JSON.parse(JSON.stringify(saved)));
  assert.ok(isPinned(reloaded.node(4)));

  assert.ok(graph.history.undo());
  assert.ok(!isPinned(graph.node(3)) && !isPinned(graph.node(4)));
  assert.ok(graph.history.redo());
  graph.history.group(() => graph.togglePinned([3]));
  assert.ok(!("pinned" in flagsOf(graph.serialize(), 3)));
  assert.ok(isPinned(graph.node(4)));
});

test("a mixed selection is pinned first, then unpinned", () => {
  const graph = loaded();
  graph.togglePinned([3]);
  graph.togglePinned([3, 4]);
  assert.ok(isPinned(graph.node(3)) && isPinned(graph.node(4)));
  graph.togglePinned([3, 4]);
  assert.ok(!isPinned(graph.node(3)) && !isPinned(graph.node(4)));
});
