// Widgets that extensions register for their own input types (`getCustomWidgets`, comfy-compat
// §7.3 and §4.4): such an input gets a widget, its value sits in widgets_values in creation
// order and goes to the API prompt under the input's name.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Graph } from "../../../web/model/graph.js";
import { parseObjectInfo } from "../../../web/model/nodedefs.js";
import { workflowToPrompt } from "../../../web/model/prompt.js";
import { valuesForWidgets, widgetsForDef } from "../../../web/model/widgets.js";
import { parseLike } from "../../../web/interaction/widgets.js";

const OBJECT_INFO = {
  Tint: {
    input: { required: { image: ["IMAGE", {}], tint: ["KILN_COLOR", { default: "#000000" }], strength: ["FLOAT", { default: 0.5 }] } },
    input_order: { required: ["image", "tint", "strength"] }, output: ["IMAGE"], output_name: ["IMAGE"], category: "test",
  },
};
const swatch = { type: "text", name: "tint", value: "#ff8800", options: {} };
const customWidget = (node, input, spec) => (spec[0] === "KILN_COLOR" ? swatch : null);

test("without an extension, a custom type is a link-only input", () => {
  const def = parseObjectInfo(OBJECT_INFO).get("Tint");
  assert.deepEqual(widgetsForDef(def).map((widget) => widget.name), ["strength"]);
});

test("an input of a registered type gets the extension's widget, its value as default", () => {
  const asked = [];
  const defs = parseObjectInfo(OBJECT_INFO, { customWidget: (node, input, spec) => (asked.push([node, input]), customWidget(node, input, spec)) });
  assert.deepEqual(asked.filter(([node]) => node === "Tint"), [["Tint", "image"], ["Tint", "tint"]], "asked for the inputs without a built-in widget");
  const widgets = widgetsForDef(defs.get("Tint"));
  assert.deepEqual(widgets.map((widget) => [widget.name, widget.kind, widget.defaultValue, widget.serialize]), [["tint", "CUSTOM", "#ff8800", true], ["strength", "FLOAT", 0.5, true]]);
  assert.equal(widgets[0].custom, swatch);
  assert.deepEqual(valuesForWidgets(widgets, ["#123456", 0.25]), ["#123456", 0.25]);
});

test("a node with a custom widget saves its value and sends it in the prompt", () => {
  const defs = parseObjectInfo(OBJECT_INFO, { customWidget });
  const graph = new Graph(defs);
  const id = graph.addNode("Tint", [0, 0]);
  assert.deepEqual(graph.node(id).widgets_values, ["#ff8800", 0.5]);
  assert.deepEqual(graph.node(id).inputs.map((input) => [input.name, input.widget?.name]), [["image", undefined], ["tint", "tint"], ["strength", "strength"]]);
  graph.setWidgetValue(id, 0, "#00ff00");
  const { prompt } = workflowToPrompt(graph.serialize(), defs);
  assert.deepEqual(prompt[String(id)].inputs, { tint: "#00ff00", strength: 0.5 });
});

test("a widget that does not serialize stays out of the prompt", () => {
  const quiet = { ...swatch, options: { serialize: false } };
  const defs = parseObjectInfo(OBJECT_INFO, { customWidget: () => quiet });
  const graph = new Graph(defs);
  const id = graph.addNode("Tint", [0, 0]);
  assert.deepEqual(workflowToPrompt(graph.serialize(), defs).prompt[String(id)].inputs, { strength: 0.5 });
});

test("text typed into a custom widget keeps the kind of its value", () => {
  assert.equal(parseLike("12.5", 3), 12.5);
  assert.equal(parseLike("oops", 3), 3);
  assert.equal(parseLike("true", false), true);
  assert.deepEqual(parseLike('{"r": 1}', { r: 0 }), { r: 1 });
  assert.deepEqual(parseLike("{broken", { r: 0 }), { r: 0 });
  assert.equal(parseLike("#abcdef", "#000000"), "#abcdef");
});
