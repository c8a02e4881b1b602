// Node geometry shared by drawing and hit-testing: slots, widget rows, sizes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Graph } from "../../../web/model/graph.js";
import { layoutNode, minimumSize, nodeBounds, SLOT_H, slotPosition, TITLE_H } from "../../../web/view/layout.js";
import { coreDefs } from "../model/helpers.mjs";

const defs = coreDefs();

function sampler() {
  const graph = new Graph(defs);
  const id = graph.addNode("KSampler", [100, 200]);
  return { graph, node: graph.node(id) };
}

test("link inputs get slot rows; widget inputs sit on their widget's row", () => {
  const { graph, node } = sampler();
  const layout = layoutNode(graph, node);
  const rows = layout.inputs.filter((slot) => slot.widgetIndex === undefined);
  assert.deepEqual(rows.map((slot) => node.inputs[slot.index].name), ["model", "positive", "negative", "latent_image"]);
  const seedSlot = layout.inputs.find((slot) => slot.name === "seed");
  const seedRow = layout.widgets.find((row) => row.widget.name === "seed");
  assert.ok(seedSlot.y > seedRow.y && seedSlot.y < seedRow.y + seedRow.h);
  assert.equal(layout.widgets.length, 7);
  assert.ok(layout.widgets.every((row, index) => index === 0 || row.y > layout.widgets[index - 1].y));
});

test("outputs sit on the right edge, inputs on the left", () => {
  const { graph, node } = sampler();
  const layout = layoutNode(graph, node);
  assert.deepEqual(slotPosition(layout, false, 0), [layout.x + layout.w, layout.outputs[0].y]);
  assert.equal(slotPosition(layout, true, 0)[0], layout.x);
});

test("a node is never drawn smaller than its content", () => {
  const { graph, node } = sampler();
  const small = { ...node, size: [10, 10] };
  const layout = layoutNode(graph, small);
  const [minW, minH] = minimumSize(graph, small);
  assert.equal(layout.w, minW);
  assert.equal(layout.h, minH);
  assert.ok(minH >= 4 * SLOT_H + 7 * 22);
});

test("the title bar is above pos; a collapsed node is only its title bar", () => {
  const { graph, node } = sampler();
  assert.deepEqual(nodeBounds(node).slice(0, 2), [100, 200 - TITLE_H]);
  const collapsed = { ...node, flags: { collapsed: true } };
  const layout = layoutNode(graph, collapsed);
  assert.equal(layout.collapsed, true);
  assert.equal(nodeBounds(collapsed)[3], TITLE_H);
  assert.equal(layout.widgets.length, 0);
});

test("a reroute is a small pill with one dot on each side", () => {
  const graph = new Graph(defs);
  const node = graph.node(graph.addNode("Reroute", [10, 20]));
  const layout = layoutNode(graph, node);
  assert.equal(layout.reroute, true);
  assert.deepEqual(nodeBounds(node), [10, 20, 75, 26]);
  assert.deepEqual(slotPosition(layout, true, 0), [10, 33]);
  assert.deepEqual(slotPosition(layout, false, 0), [85, 33]);
});
