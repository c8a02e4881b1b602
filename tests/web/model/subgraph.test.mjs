// Subgraph definitions (comfy-compat §4.3) opened for editing: the inner graph writes every
// change back into the workflow's definitions, keeps its own undo history, and the IO nodes
// turn back into `inputNode`/`outputNode` and `linkIds` exactly.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { Editor } from "../../../web/editor.js";
import { Graph } from "../../../web/model/graph.js";
import { SUBGRAPH_INPUT_ID, SUBGRAPH_OUTPUT_ID } from "../../../web/model/subgraph_io.js";
import { coreDefs, readJson, WORKFLOWS } from "./helpers.mjs";

const defs = coreDefs();
const ENCODE_PROMPTS = "3f0c8a52-6b1e-4d7a-9c2f-1a2b3c4d5e6f";
const NEGATIVE_ENCODER = "b7e1d2c3-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const fixture = () => readJson(path.join(WORKFLOWS, "subgraph_nested.json"));

function findDefinition(workflow, id) {
  const pending = [...(workflow.definitions?.subgraphs ?? [])];
  while (pending.length) {
    const candidate = pending.pop();
    if (candidate.id === id) return candidate;
    pending.push(...(candidate.definitions?.subgraphs ?? []));
  }
  return undefined;
}

const opened = () => {
  const editor = new Editor(defs);
  editor.load(fixture());
  assert.equal(editor.enterSubgraph(10), true);
  return editor;
};

test("a workflow with nested definitions round-trips, definitions nested where they were", () => {
  const graph = new Graph(defs);
  graph.load(fixture());
  assert.deepEqual(graph.serialize(), fixture());
  assert.deepEqual(graph.definitions().map((record) => [record.jsonId, record.owner]), [[ENCODE_PROMPTS, null], [NEGATIVE_ENCODER, ENCODE_PROMPTS]]);
});

test("an opened definition shows its IO as nodes and writes back unchanged when not edited", () => {
  const original = findDefinition(fixture(), ENCODE_PROMPTS);
  const { definitions, ...own } = original;
  const graph = new Graph(defs);
  graph.loadSubgraph(own);
  const input = graph.node(SUBGRAPH_INPUT_ID);
  const output = graph.node(SUBGRAPH_OUTPUT_ID);
  assert.deepEqual(input.outputs.map((slot) => [slot.name, slot.type, slot.links]), [["clip", "CLIP", [1, 2]]]);
  assert.deepEqual(output.inputs.map((slot) => [slot.name, slot.type, slot.link]), [["positive", "CONDITIONING", 3], ["negative", "CONDITIONING", 4]]);
  assert.deepEqual(graph.serializeSubgraph(), own);
});

test("a widget edited inside reaches the saved workflow and undoes on the subgraph's own history", () => {
  const editor = opened();
  assert.equal(editor.depth, 1);
  const inner = editor.graph;
  assert.notEqual(inner, editor.rootGraph);
  inner.history.group(() => inner.setWidgetValue(6, 0, "a glass teapot"));
  const saved = editor.serialize();
  assert.equal(findDefinition(saved, ENCODE_PROMPTS).nodes.find((node) => node.id === 6).widgets_values[0], "a glass teapot");
  assert.equal(editor.rootGraph.history.canUndo, false, "the workflow level has nothing to undo");
  assert.equal(editor.modified, true);
  inner.history.undo();
  assert.deepEqual(findDefinition(editor.serialize(), ENCODE_PROMPTS), findDefinition(fixture(), ENCODE_PROMPTS));
  inner.history.redo();
  assert.equal(findDefinition(editor.serialize(), ENCODE_PROMPTS).nodes.find((node) => node.id === 6).widgets_values[0], "a glass teapot");
});

test("undo on the workflow level leaves the edited definitions alone", () => {
  const editor = new Editor(defs);
  editor.load(fixture());
  editor.rootGraph.history.group(() => editor.rootGraph.moveNodes([3], 10, 0));
  editor.enterSubgraph(10);
  editor.graph.history.group(() => editor.graph.setWidgetValue(6, 0, "kept"));
  editor.exitTo(0);
  editor.rootGraph.history.undo();
  const saved = editor.serialize();
  assert.deepEqual(saved.nodes.find((node) => node.id === 3).pos, [0, 0]);
  assert.equal(findDefinition(saved, ENCODE_PROMPTS).nodes.find((node) => node.id === 6).widgets_values[0], "kept");
});

test("wiring the IO nodes updates inputs/outputs linkIds; IO nodes cannot be deleted or copied", () => {
  const editor = opened();
  const inner = editor.graph;
  const linkId = inner.history.group(() => inner.connect(SUBGRAPH_INPUT_ID, 0, 6, 0));
  inner.history.group(() => inner.removeLink(3));
  inner.history.group(() => inner.removeNodes([SUBGRAPH_INPUT_ID, SUBGRAPH_OUTPUT_ID]));
  assert.ok(inner.node(SUBGRAPH_INPUT_ID) && inner.node(SUBGRAPH_OUTPUT_ID));
  assert.deepEqual(inner.copy([SUBGRAPH_INPUT_ID, 6]).nodes.map((node) => node.id), [6]);
  const definition = findDefinition(editor.serialize(), ENCODE_PROMPTS);
  assert.deepEqual(definition.inputs[0].linkIds, [2, linkId]);
  assert.deepEqual(definition.outputs.map((io) => io.linkIds), [[], [4]]);
  assert.deepEqual(definition.links.find((link) => link.id === linkId), { id: linkId, origin_id: SUBGRAPH_INPUT_ID, origin_slot: 0, target_id: 6, target_slot: 0, type: "CLIP" });
  assert.equal(definition.state.lastLinkId, linkId);
});

test("moving the input node moves its saved bounding, keeping its size", () => {
  const editor = opened();
  editor.graph.moveNodes([SUBGRAPH_INPUT_ID], -50, 20);
  assert.deepEqual(findDefinition(editor.serialize(), ENCODE_PROMPTS).inputNode, { id: -10, bounding: [-50, 20, 120, 60] });
});

test("a subgraph nested in a subgraph opens from the inner level and saves into its own definition", () => {
  const editor = opened();
  assert.equal(editor.enterSubgraph(7), true);
  assert.equal(editor.depth, 2);
  assert.deepEqual(editor.levels.map((level) => level.title), ["Unsaved Workflow", "Encode prompts", "Negative encoder"]);
  editor.graph.history.group(() => editor.graph.setWidgetValue(1, 0, "blurry"));
  const saved = editor.serialize();
  assert.equal(findDefinition(saved, NEGATIVE_ENCODER).nodes[0].widgets_values[0], "blurry");
  assert.ok(findDefinition(saved, ENCODE_PROMPTS).definitions.subgraphs.some((definition) => definition.id === NEGATIVE_ENCODER), "still nested");
  assert.equal(editor.exitTo(), true);
  assert.equal(editor.depth, 1);
  assert.equal(editor.exitTo(0), true);
  assert.equal(editor.graph, editor.rootGraph);
  assert.equal(editor.exitTo(), false);
});

test("a node that is not a subgraph instance does not open", () => {
  const editor = new Editor(defs);
  editor.load(fixture());
  assert.equal(editor.enterSubgraph(3), false);
  assert.equal(editor.depth, 0);
});

test("loading another workflow closes the opened levels", () => {
  const editor = opened();
  editor.load(readJson(path.join(WORKFLOWS, "default_text_to_image.json")));
  assert.equal(editor.depth, 0);
  assert.equal(editor.graph, editor.rootGraph);
  assert.equal(editor.innerGraphs.size, 0);
});

test("nodes added, moved and removed inside are saved in the definition, with its counters", () => {
  const editor = opened();
  const inner = editor.graph;
  const id = inner.history.group(() => inner.addNode("ConditioningZeroOut", [300, 300]));
  assert.equal(id, 8, "after the definition's lastNodeId");
  inner.history.group(() => inner.moveNodes([6], 5, 5));
  let definition = findDefinition(editor.serialize(), ENCODE_PROMPTS);
  assert.deepEqual(definition.nodes.map((node) => [node.id, node.type]), [[6, "CLIPTextEncode"], [7, NEGATIVE_ENCODER], [8, "ConditioningZeroOut"]]);
  assert.deepEqual(definition.nodes[0].pos, [5, 5]);
  assert.equal(definition.state.lastNodeId, 8);
  inner.history.group(() => inner.removeNodes([7]));
  definition = findDefinition(editor.serialize(), ENCODE_PROMPTS);
  assert.deepEqual(definition.nodes.map((node) => node.id), [6, 8]);
  assert.deepEqual(definition.outputs[1].linkIds, [], "the removed node's link to the output is gone");
  assert.ok(findDefinition(editor.serialize(), NEGATIVE_ENCODER), "its definition stays");
});

test("a subgraph instance pasted into another workflow brings its definitions along", () => {
  const source = new Graph(defs);
  source.load(fixture());
  const clipboard = JSON.parse(JSON.stringify(source.copy([10])));
  assert.deepEqual(clipboard.definitions.map((definition) => definition.id), [ENCODE_PROMPTS]);
  const target = new Graph(defs);
  target.load(readJson(path.join(WORKFLOWS, "default_text_to_image.json")));
  const [pasted] = target.history.group(() => target.paste(clipboard, [0, 0]));
  assert.equal(target.isSubgraphType(target.node(pasted).type), true);
  assert.ok(target.isSubgraphType(NEGATIVE_ENCODER), "the nested definition too");
  assert.deepEqual(findDefinition(target.serialize(), ENCODE_PROMPTS), findDefinition(fixture(), ENCODE_PROMPTS));
  target.history.group(() => target.paste(clipboard, [0, 500]));
  assert.equal(target.definitions().length, 2, "a definition already there is not added twice");
});
